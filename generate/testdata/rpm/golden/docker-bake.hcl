# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["fedora"]
}

target "fedora" {
  context    = "."
  dockerfile = ".build/fedora/Containerfile"
  tags       = ["ghcr.io/example/fedora:2026.47.905", "ghcr.io/example/fedora:latest"]
  platforms  = ["linux/amd64", "linux/arm64"]
}
