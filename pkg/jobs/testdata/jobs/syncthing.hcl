job "syncthing" {
  datacenters = ["home"]
  group "sync" {
    task "syncthing" {
      driver = "docker"
      config {
        image = "syncthing/syncthing:1.27"
        volumes = ["/data/compute/syncthing/config:/var/syncthing/config", "/data/compute/syncthing/folders:/var/syncthing/folders"]
      }
      env { STGUIADDRESS = "0.0.0.0:8384" }
    }
  }
}
