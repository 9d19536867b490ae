# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["dev"]
}

variable "SOURCE_DATE_EPOCH" {
  default = "1700000000"
}

target "dev" {
  context    = "."
  dockerfile = ".build/dev/Containerfile"
  tags       = ["registry.example:5000/team/dev:nightly"]
  platforms  = ["linux/amd64"]
  labels = {
    "dev.overthink.layers"           = "scripts,devtools,hello-node,hello-rust,app"
    "dev.overthink.parent"           = "ubuntu:24.04"
    "org.opencontainers.image.title" = "dev"
  }
  annotations = compact(["manifest:dev.overthink.layers=scripts,devtools,hello-node,hello-rust,app", "manifest:dev.overthink.parent=ubuntu:24.04", SOURCE_DATE_EPOCH == "" ? "" : format("manifest:org.opencontainers.image.created=%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH))), "manifest:org.opencontainers.image.title=dev", "manifest:org.opencontainers.image.version=nightly"])
  output      = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
