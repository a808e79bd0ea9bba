# The signoz-control functions' Kubernetes RBAC: the Roles and RoleBindings that
# `signoz-control rbac <spec>` renders (one source for Terraform, SAM users and the tests),
# applied server-side. The namespaces must exist; this module never creates them.
locals {
  documents = [
    for doc in split("\n---\n", file(var.manifest_file)) : yamldecode(doc)
    if trimspace(replace(doc, "/(?m)^#.*$/", "")) != ""
  ]
  manifests = {
    for m in local.documents :
    "${m.kind}/${m.metadata.namespace}/${m.metadata.name}" => m
  }
}

resource "kubernetes_manifest" "rbac" {
  for_each = local.manifests

  manifest = each.value

  field_manager {
    name            = "terraform-signoz-control"
    force_conflicts = false
  }
}
