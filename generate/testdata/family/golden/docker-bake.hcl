# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["base", "app", "app-extra", "tiny"]
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

target "base" {
  context    = "."
  dockerfile = ".build/base/Containerfile"
  tags       = ["ghcr.io/example/base:1.2.3"]
  platforms  = ["linux/amd64", "linux/arm64"]
  labels = {
    "dev.overthink.layers"           = "marker"
    "dev.overthink.parent"           = "debian:bookworm"
    "org.opencontainers.image.title" = "base"
  }
  annotations = compact(["manifest:dev.overthink.layers=marker", "manifest:dev.overthink.parent=debian:bookworm", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=base", "manifest:org.opencontainers.image.version=1.2.3"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "app" {
  context    = "."
  dockerfile = ".build/app/Containerfile"
  contexts = {
    "ghcr.io/example/base:1.2.3" = "target:base"
  }
  tags      = ["ghcr.io/example/app:2026.47.905", "ghcr.io/example/app:latest"]
  platforms = ["linux/amd64", "linux/arm64"]
  labels = {
    "dev.overthink.layers"           = "tool"
    "dev.overthink.parent"           = "ghcr.io/example/base:1.2.3"
    "org.opencontainers.image.title" = "app"
  }
  annotations = compact(["manifest:dev.overthink.layers=tool", "manifest:dev.overthink.parent=ghcr.io/example/base:1.2.3", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=app", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "app-extra" {
  context    = "."
  dockerfile = ".build/app-extra/Containerfile"
  contexts = {
    "ghcr.io/example/app" = "target:app"
  }
  tags      = ["ghcr.io/example/app-extra:2026.47.905", "ghcr.io/example/app-extra:latest"]
  platforms = ["linux/amd64"]
  labels = {
    "dev.overthink.layers"           = "extra"
    "dev.overthink.parent"           = "ghcr.io/example/app:latest"
    "org.opencontainers.image.title" = "app-extra"
  }
  annotations = compact(["manifest:dev.overthink.layers=extra", "manifest:dev.overthink.parent=ghcr.io/example/app:latest", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=app-extra", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "tiny" {
  context    = "."
  dockerfile = ".build/tiny/Containerfile"
  tags       = ["tiny:2026.47.905", "tiny:latest"]
  platforms  = ["linux/amd64", "linux/arm64"]
  labels = {
    "dev.overthink.layers"           = "arch"
    "dev.overthink.parent"           = "busybox:latest"
    "org.opencontainers.image.title" = "tiny"
  }
  annotations = compact(["manifest:dev.overthink.layers=arch", "manifest:dev.overthink.parent=busybox:latest", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=tiny", "manifest:org.opencontainers.image.version=2026.47.905"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
