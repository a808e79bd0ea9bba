//! `kube-identity <kubeconfig-out> <user> <group>...`: writes a kubeconfig for an identity
//! of the local stack's kube-apiserver (a client certificate from its kube client CA), as
//! an EKS access entry maps a function's IAM role to a user and groups.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, user, groups @ ..] = args.as_slice() else {
        eprintln!("usage: kube-identity <kubeconfig-out> <user> <group>...");
        std::process::exit(2);
    };
    platform_tests::kube::write_identity_kubeconfig(std::path::Path::new(out), user, groups);
}
