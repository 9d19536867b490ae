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
  output     = [format("type=image,rewrite-timestamp=true,source-date-epoch=%s", SOURCE_DATE_EPOCH)]
}
