# Gitea: git forge, data on the shared volume.
job "gitea" {
  datacenters = ["home"]
  type        = "service"

  group "gitea" {
    count = 1

    network {
      port "http" { to = 3000 }
      port "ssh"  { to = 22 }
    }

    task "gitea" {
      driver = "docker"

      config {
        image = "gitea/gitea:1.22"
        ports = ["http", "ssh"]
        volumes = [
          "/data/compute/gitea:/data",          # repos + config
          "/etc/localtime:/etc/localtime:ro",
        ]
      }

      env {
        USER_UID = "1000"
        GITEA__server__ROOT_URL = "https://git.home.arpa/"
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
