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
  output     = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
