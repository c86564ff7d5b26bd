locals {
  config_dir = "/data/compute/esphome"
}

job "esphome" {
  datacenters = ["home"]
  group "esphome" {
    task "esphome" {
      driver = "docker"
      config {
        image        = "ghcr.io/esphome/esphome:stable"
        network_mode = "host"
        volumes      = ["${local.config_dir}:/config"]
      }
    }
  }
}
