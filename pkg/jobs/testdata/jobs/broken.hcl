job "broken" {
  datacenters = ["home"]
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = "alpine"
        volumes = ["/data/compute/broken:/data"
      }
    }
  }
