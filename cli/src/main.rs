//! `signoz-control`: the platform engineer's command line, over the same library and
//! planners as the functions, with the user's own AWS credentials and kubeconfig.

mod apply;
mod cost;
mod output;
mod plan;
mod session;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::{ColorChoice, Style};
use plan::Area;

#[derive(Parser)]
#[command(
    name = "signoz-control",
    version,
    about = "Validate, plan, apply and inspect a self-hosted SigNoz platform on EKS from its platform spec",
    long_about = "Validate, plan, apply and inspect a self-hosted SigNoz platform on EKS from its platform spec.\n\n\
        plan, apply and status read the live platform with your own credentials: the AWS SDK's \
        standard chain (AWS_PROFILE, AWS_REGION; AWS_ENDPOINT_URL for a local stack) and the cluster \
        of KUBECONFIG (else EKS DescribeCluster and an IAM token for the spec's cluster). The spec is \
        a path or s3://bucket/key, PLATFORM_SPEC when not given.",
    after_help = "Example:\n  signoz-control validate infra/platform.yaml && signoz-control plan infra/platform.yaml"
)]
struct Cli {
    /// When to colour the output (auto: on a terminal, unless NO_COLOR is set).
    #[arg(long, global = true, value_enum, default_value = "auto")]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a spec the way the functions load it: every problem with its path, nothing
    /// contacted. Exit code 0 when valid, 1 when not.
    #[command(
        after_help = "Example (a pre-commit hook, CI):\n  signoz-control validate infra/platform.yaml --format json"
    )]
    Validate {
        /// The platform spec (a local file; `-` reads stdin).
        spec: PathBuf,
        /// `json` for machines: {"valid": bool, "problems": [{"path", "message"}]}.
        #[arg(long, value_enum, default_value = "text")]
        format: validate::Format,
    },
    /// Show what the control plane would change, read from the live platform through the
    /// functions' own dry runs (the cluster's is a server-side apply dry run: each diff is
    /// what the API server would store). Exit code 0 no changes, 2 changes, 1 an error
    /// or a refused change.
    #[command(
        after_help = "Example:\n  signoz-control plan s3://acme-signoz-config/platform.yaml --only cluster"
    )]
    Plan {
        /// The platform spec: a path or s3://bucket/key.
        #[arg(env = "PLATFORM_SPEC")]
        spec: String,
        /// Plan one area only.
        #[arg(long, value_enum)]
        only: Option<Area>,
    },
    /// Show the plan, ask, then apply it through the functions' own paths, printing each
    /// change as it is made. Exit code 0 applied (or nothing to do), 1 otherwise.
    #[command(
        after_help = "Example:\n  signoz-control apply infra/platform.yaml --only cold-storage --auto-approve"
    )]
    Apply {
        /// The platform spec: a path or s3://bucket/key.
        #[arg(env = "PLATFORM_SPEC")]
        spec: String,
        /// Apply one area only.
        #[arg(long, value_enum)]
        only: Option<Area>,
        /// Apply without asking (needed when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
    },
    /// One screen of where the platform stands: spec revision, drift per area, retention
    /// memory against what SigNoz reports, rotations, alarm overrides, TTL jobs.
    #[command(
        after_help = "Example:\n  PLATFORM_SPEC=s3://acme-signoz-config/platform.yaml signoz-control status"
    )]
    Status {
        /// The platform spec: a path or s3://bucket/key.
        #[arg(env = "PLATFORM_SPEC")]
        spec: String,
    },
    /// Print the Kubernetes Roles and RoleBindings the functions need for a spec.
    ///
    /// Apply them with the cluster's admin rights (`kubectl apply --server-side -f -`, the
    /// Terraform `cluster-rbac` module, or your GitOps repository); each function's IAM
    /// role is mapped to its group by the EKS access entry the deployment creates.
    #[command(
        after_help = "Example:\n  signoz-control rbac infra/platform.yaml > infra/kubernetes/rbac.yaml"
    )]
    Rbac {
        /// The platform spec (YAML).
        spec: PathBuf,
    },
    /// Print the monthly S3 cost of the cold tiers for a spec's `cold_storage.cost`: a
    /// short table and every assumption behind it; `--svg` also writes the chart.
    #[command(
        after_help = "Example:\n  signoz-control cost infra/platform.yaml --svg cost-curve.svg"
    )]
    Cost {
        /// The platform spec (YAML).
        spec: PathBuf,
        /// Where to write the SVG chart of the monthly cost per storage class.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let style = Style::for_stdout(cli.color);
    match cli.command {
        Command::Validate { spec, format } => {
            let (out, code) = validate::validate(&spec, format, &style);
            println!("{out}");
            ExitCode::from(code)
        }
        Command::Rbac { spec } => print_result(load_file(&spec).and_then(|s| {
            signoz_control::cluster::permissions::render_rbac_yaml(&s).map_err(|e| e.to_string())
        })),
        Command::Cost { spec, svg } => {
            print_result(load_file(&spec).and_then(|s| cost::cost(&s, svg.as_deref())))
        }
        Command::Plan { spec, only } => live(&spec, false, |session| async move {
            let planned = plan::plan(&session, &plan::areas(only)).await;
            print!("{}", planned.render(&style));
            planned.exit_code()
        }),
        Command::Apply {
            spec,
            only,
            auto_approve,
        } => live(&spec, true, |session| async move {
            apply::apply(&session, &plan::areas(only), auto_approve, &style).await
        }),
        Command::Status { spec } => live(&spec, false, |session| async move {
            let (out, broken) = status::status(&session, &style).await;
            print!("{out}");
            u8::from(broken)
        }),
    }
}

/// Runs a command that reads the live platform: the spec loaded, then `run`; with
/// `progress`, the library's changes are printed as they are made (else only errors:
/// what a plan finds is in the plan).
fn live<F, Fut>(spec: &str, progress: bool, run: F) -> ExitCode
where
    F: FnOnce(session::Session) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    output::install_progress(progress);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        match session::Session::open(spec).await {
            Ok(session) => ExitCode::from(run(session).await),
            Err(message) => {
                eprintln!("signoz-control: {message}");
                ExitCode::FAILURE
            }
        }
    })
}

fn print_result(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("signoz-control: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_file(path: &std::path::Path) -> Result<signoz_control::spec::PlatformSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    signoz_control::spec::parse_spec(&text).map_err(|e| e.to_string())
}
