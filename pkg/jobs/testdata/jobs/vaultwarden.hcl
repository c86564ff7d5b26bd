variable "data_root" {
  type    = string
  default = "/data/compute"
}

job "vaultwarden" {
  datacenters = ["home"]
  group "vw" {
    task "vaultwarden" {
      driver = "docker"
      config {
        image   = "vaultwarden/server:latest"
        volumes = ["${var.data_root}/vaultwarden:/data"]
      }
    }
  }
}
