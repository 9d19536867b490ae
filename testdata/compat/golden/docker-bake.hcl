# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["fedora", "githubrunner", "bazzite-ai"]
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

target "fedora" {
  context    = "."
  dockerfile = ".build/fedora/Containerfile"
  tags       = ["ghcr.io/example/fedora:2026.47.905", "ghcr.io/example/fedora:latest"]
  platforms  = ["linux/amd64"]
  output     = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "githubrunner" {
  context    = "."
  dockerfile = ".build/githubrunner/Containerfile"
  contexts = {
    "ghcr.io/example/fedora" = "target:fedora"
  }
  tags      = ["ghcr.io/example/githubrunner:2026.47.905", "ghcr.io/example/githubrunner:latest"]
  platforms = ["linux/amd64"]
  output    = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "bazzite-ai" {
  context    = "."
  dockerfile = ".build/bazzite-ai/Containerfile"
  tags       = ["ghcr.io/example/bazzite-ai:2026.47.905", "ghcr.io/example/bazzite-ai:latest"]
  platforms  = ["linux/amd64"]
  output     = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
