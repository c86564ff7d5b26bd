job "traefik" {
  datacenters = ["home"]
  type = "system"
  group "traefik" {
    network {
      port "http"  { static = 80 }
      port "https" { static = 443 }
    }
    task "traefik" {
      driver = "docker"
      config {
        image = "traefik:v3.1"
        network_mode = "host"
        volumes = [
          "local/traefik.toml:/etc/traefik/traefik.toml",
          "/data/compute/traefik/acme:/acme",
        ]
      }
      template {
        destination = "local/traefik.toml"
        data = <<EOF2
[entryPoints.websecure]
  address = ":443"
[certificatesResolvers.le.acme]
  storage = "/acme/acme.json"
EOF2
      }
    }
  }
}
