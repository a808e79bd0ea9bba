output "objects" {
  description = "Kind/namespace/name of every RBAC object applied."
  value       = keys(kubernetes_manifest.rbac)
}
