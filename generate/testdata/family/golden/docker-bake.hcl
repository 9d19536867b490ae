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
  output     = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "app" {
  context    = "."
  dockerfile = ".build/app/Containerfile"
  contexts = {
    "ghcr.io/example/base:1.2.3" = "target:base"
  }
  tags      = ["ghcr.io/example/app:2026.47.905", "ghcr.io/example/app:latest"]
  platforms = ["linux/amd64", "linux/arm64"]
  output    = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "app-extra" {
  context    = "."
  dockerfile = ".build/app-extra/Containerfile"
  contexts = {
    "ghcr.io/example/app" = "target:app"
  }
  tags      = ["ghcr.io/example/app-extra:2026.47.905", "ghcr.io/example/app-extra:latest"]
  platforms = ["linux/amd64"]
  output    = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}

target "tiny" {
  context    = "."
  dockerfile = ".build/tiny/Containerfile"
  tags       = ["tiny:2026.47.905", "tiny:latest"]
  platforms  = ["linux/amd64", "linux/arm64"]
  output     = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
