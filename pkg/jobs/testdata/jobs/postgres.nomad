job "postgres" {
  datacenters = ["home"]
  constraint {
    attribute = "${node.unique.name}"
    value     = "zippy"
  }
  group "db" {
    task "postgres" {
      driver = "docker"
      config {
        image = "postgres:16"
        mount {
          type     = "bind"
          source   = "/data/compute/postgres/16"
          target   = "/var/lib/postgresql/data"
          readonly = false
        }
        # a volume mount keeps its name: not a host path
        mount {
          type   = "volume"
          source = "pg-sockets"
          target = "/var/run/postgresql"
        }
      }
      template {
        data        = <<EOT
POSTGRES_PASSWORD={{ with secret "kv/postgres" }}{{ .Data.password }}{{ end }}
PGDATA=/var/lib/postgresql/data
EOT
        destination = "secrets/env"
        env         = true
      }
    }
  }
}
