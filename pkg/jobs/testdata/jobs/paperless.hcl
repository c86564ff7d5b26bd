job "paperless" {
  datacenters = ["home"]
  group "paperless" {
    network {
      port "http" { to = 8000 }
    }
    task "web" {
      driver = "docker"
      config {
        image = "ghcr.io/paperless-ngx/paperless-ngx:latest"
        ports = ["http"]
        mounts = [
          { type = "bind", source = "/data/compute/paperless/data", target = "/usr/src/paperless/data" },
          { type = "bind", source = "/data/compute/paperless/media", target = "/usr/src/paperless/media" },
          { type = "tmpfs", target = "/tmp" },
        ]
      }
      template {
        data = "PAPERLESS_CONSUMPTION_DIR=/data/compute/paperless/consume\n"
        destination = "local/env"
        env = true
      }
    }
  }
}
