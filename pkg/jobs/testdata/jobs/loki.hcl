job "loki" {
  datacenters = ["home"]
  group "loki" {
    task "loki" {
      driver = "docker"
      config {
        image = "grafana/loki:3.1.0"
        args  = ["-config.file=/local/loki.yaml"]
        volumes = ["/data/compute/loki/${NOMAD_ALLOC_INDEX}:/loki"]
      }
    }
  }
}
