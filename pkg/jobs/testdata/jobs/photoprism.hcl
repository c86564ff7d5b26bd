job "photoprism" {
  datacenters = ["home"]
  group "pp" {
    task "photoprism" {
      driver = "docker"
      config {
        image = "photoprism/photoprism:latest"
        volumes = [
          "/data/compute/photoprism/storage:/photoprism/storage",
          "/data/media/photos:/photoprism/originals:ro",
          "/data/compute/photoprism/import:/data/compute/import",  # container side names the old path: left alone
        ]
      }
      env {
        PHOTOPRISM_ORIGINALS_LIMIT = "5000"
      }
    }
  }
}
