# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["fedora", "githubrunner", "bazzite-ai"]
}

target "fedora" {
  context    = "."
  dockerfile = ".build/fedora/Containerfile"
  tags       = ["ghcr.io/example/fedora:2026.47.905", "ghcr.io/example/fedora:latest"]
  platforms  = ["linux/amd64"]
}

target "githubrunner" {
  context    = "."
  dockerfile = ".build/githubrunner/Containerfile"
  contexts = {
    "ghcr.io/example/fedora" = "target:fedora"
  }
  tags      = ["ghcr.io/example/githubrunner:2026.47.905", "ghcr.io/example/githubrunner:latest"]
  platforms = ["linux/amd64"]
}

target "bazzite-ai" {
  context    = "."
  dockerfile = ".build/bazzite-ai/Containerfile"
  tags       = ["ghcr.io/example/bazzite-ai:2026.47.905", "ghcr.io/example/bazzite-ai:latest"]
  platforms  = ["linux/amd64"]
}
