job "immich" {
  datacenters = ["home"]

  group "immich" {
    network {
      port "http" { to = 2283 }
    }

    task "server" {
      driver = "docker"
      config {
        image   = "ghcr.io/immich-app/immich-server:release"
        ports   = ["http"]
        volumes = ["/data/compute/immich/upload:/usr/src/app/upload", "/data/compute/immich/config:/config:ro"]
      }
      env {
        UPLOAD_LOCATION = "/data/compute/immich/upload"   # only for the web UI's notice
        DB_HOSTNAME     = "postgres.service.consul"
      }
    }

    task "ml" {
      driver = "docker"
      config {
        image = "ghcr.io/immich-app/immich-machine-learning:release"
        mount {
          type   = "bind"
          source = "/data/compute/immich/model-cache"
          target = "/cache"
        }
      }
    }
  }
}
