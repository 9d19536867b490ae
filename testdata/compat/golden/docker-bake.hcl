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
  labels = {
    "dev.overthink.layers"           = "repos,node,npm-tools,ml-env"
    "dev.overthink.parent"           = "quay.io/fedora/fedora:43"
    "org.opencontainers.image.title" = "fedora"
  }
  annotations = compact(["manifest:dev.overthink.layers=repos,node,npm-tools,ml-env", "manifest:dev.overthink.parent=quay.io/fedora/fedora:43", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=fedora", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "githubrunner" {
  context    = "."
  dockerfile = ".build/githubrunner/Containerfile"
  contexts = {
    "ghcr.io/example/fedora" = "target:fedora"
  }
  tags      = ["ghcr.io/example/githubrunner:2026.47.905", "ghcr.io/example/githubrunner:latest"]
  platforms = ["linux/amd64"]
  labels = {
    "dev.overthink.layers"           = "runner"
    "dev.overthink.parent"           = "ghcr.io/example/fedora:latest"
    "org.opencontainers.image.title" = "githubrunner"
  }
  annotations = compact(["manifest:dev.overthink.layers=runner", "manifest:dev.overthink.parent=ghcr.io/example/fedora:latest", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=githubrunner", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "bazzite-ai" {
  context    = "."
  dockerfile = ".build/bazzite-ai/Containerfile"
  tags       = ["ghcr.io/example/bazzite-ai:2026.47.905", "ghcr.io/example/bazzite-ai:latest"]
  platforms  = ["linux/amd64"]
  labels = {
    "dev.overthink.layers"           = "bootc-tools"
    "dev.overthink.parent"           = "ghcr.io/ublue-os/bazzite:stable"
    "org.opencontainers.image.title" = "bazzite-ai"
  }
  annotations = compact(["manifest:dev.overthink.layers=bootc-tools", "manifest:dev.overthink.parent=ghcr.io/ublue-os/bazzite:stable", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=bazzite-ai", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
