job "jellyfin" {
  datacenters = ["home"]
  group "media" {
    task "jellyfin" {
      driver = "docker"
      config {
        image = "jellyfin/jellyfin:10.9"
        network_mode = "host"
        volumes = [
          "/data/compute/jellyfin/config:/config",
          "/data/compute/jellyfin/cache:/cache",
          "/data/media:/media:ro",     # CIFS from fractal, unchanged
        ]
      }
    }
  }
}
