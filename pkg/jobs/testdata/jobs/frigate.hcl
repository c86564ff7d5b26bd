job "frigate" {
  datacenters = ["home"]
  group "nvr" {
    task "frigate" {
      driver = "docker"
      config {
        image = "ghcr.io/blakeblackshear/frigate:stable"
        shm_size = 268435456
        volumes = [
          "/data/compute/frigate/config:/config",
          "/data/compute/frigate/media:/media/frigate",
          "/dev/bus/usb:/dev/bus/usb",
        ]
        mount {
          type = "tmpfs"
          target = "/tmp/cache"
          tmpfs_options { size = 1000000000 }
        }
      }
    }
  }
}
