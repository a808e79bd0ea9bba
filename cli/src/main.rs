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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Rbac { spec } => rbac(&spec),
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

fn rbac(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = parse_spec(&text).map_err(|e| e.to_string())?;
    render_rbac_yaml(&spec).map_err(|e| e.to_string())
}
