variable "manifest_file" {
  description = "Path of the YAML file `signoz-control rbac <spec>` wrote (Roles and RoleBindings only)."
  type        = string

  validation {
    condition     = fileexists(var.manifest_file)
    error_message = "manifest_file must name an existing file: run `signoz-control rbac <spec> > <file>` first."
  }
}
