# .build/docker-bake.hcl (generated -- do not edit)
group "default" {
  targets = ["dev"]
}

target "dev" {
  context    = "."
  dockerfile = ".build/dev/Containerfile"
  tags       = ["registry.example:5000/team/dev:nightly"]
  platforms  = ["linux/amd64"]
}
