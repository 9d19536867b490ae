# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["fedora"]
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

target "fedora" {
  context    = "."
  dockerfile = ".build/fedora/Containerfile"
  tags       = ["ghcr.io/example/fedora:2026.47.905", "ghcr.io/example/fedora:latest"]
  platforms  = ["linux/amd64", "linux/arm64"]
  labels = {
    "dev.overthink.layers"           = "repos,pixi-toml,pyproject,conda-env,traefik,web"
    "dev.overthink.parent"           = "quay.io/fedora/fedora:43"
    "org.opencontainers.image.title" = "fedora"
  }
  annotations = compact(["manifest:dev.overthink.layers=repos,pixi-toml,pyproject,conda-env,traefik,web", "manifest:dev.overthink.parent=quay.io/fedora/fedora:43", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=fedora", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
