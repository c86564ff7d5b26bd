job "homeassistant" {
  datacenters = ["home"]
  group "ha" {
    task "ha" {
      driver = "docker"
      config {
        image = "ghcr.io/home-assistant/home-assistant:stable"
        privileged = true
        volumes = ["/data/compute/homeassistant:/config", "/run/dbus:/run/dbus:ro"]
      }
    }
  }
}
