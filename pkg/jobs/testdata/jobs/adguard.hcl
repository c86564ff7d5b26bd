job "adguard" {
  datacenters = ["home"]
  group "dns" {
    task "adguard" {
      driver = "docker"
      config {
        image = "adguard/adguardhome:v0.107"
        network_mode = "host"
        volumes = [
          "/data/compute/adguard/work:/opt/adguardhome/work",
          "/data/compute/adguard/conf:/opt/adguardhome/conf",
        ]
      }
    }
  }
}
