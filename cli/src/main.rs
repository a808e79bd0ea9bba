//! `signoz-control`: the platform engineer's command line, over the same library and
//! planners as the functions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signoz_control::cluster::permissions::render_rbac_yaml;
use signoz_control::spec::parse_spec;

#[derive(Parser)]
#[command(name = "signoz-control", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Kubernetes Roles and RoleBindings the functions need for a spec.
    ///
    /// Apply them with the cluster's admin rights (`kubectl apply --server-side -f -`, the
    /// Terraform `cluster-rbac` module, or your GitOps repository); each function's IAM
    /// role is mapped to its group by the EKS access entry the deployment creates.
    ///
    /// Example: signoz-control rbac infra/platform.yaml > infra/kubernetes/rbac.yaml
    Rbac {
        /// The platform spec (YAML).
        spec: PathBuf,
    },
    /// Print the monthly S3 cost of the cold tiers for a spec's `cold_storage.cost`: a
    /// short table and every assumption behind it; `--svg` also writes the chart.
    ///
    /// Example: signoz-control cost infra/platform.yaml --svg cost-curve.svg
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
    let result = match cli.command {
        Command::Rbac { spec } => rbac(&spec),
        Command::Cost { spec, svg } => cost(&spec, svg.as_deref()),
    };
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

fn load(path: &std::path::Path) -> Result<signoz_control::spec::PlatformSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_spec(&text).map_err(|e| e.to_string())
}

fn rbac(path: &std::path::Path) -> Result<String, String> {
    render_rbac_yaml(&load(path)?).map_err(|e| e.to_string())
}

fn cost(path: &std::path::Path, svg: Option<&std::path::Path>) -> Result<String, String> {
    use signoz_control::cold_storage::cost::{cost_chart_svg, cost_curve, cost_table};
    let spec = load(path)?;
    let prices = spec
        .cold_storage
        .cost
        .as_ref()
        .ok_or("the spec has no cold_storage.cost section")?;
    let curve = cost_curve(&spec.cold_storage, &spec.retention, prices);
    if let Some(out) = svg {
        std::fs::write(out, cost_chart_svg(&curve))
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let mut text = format!(
        "monthly S3 cost of the cold tiers (USD):\n{}\nassumptions:\n",
        cost_table(&curve)
    );
    for a in &curve.assumptions {
        text.push_str(&format!(" - {a}\n"));
    }
    Ok(text)
}
