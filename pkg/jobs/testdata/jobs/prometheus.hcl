job "prometheus" {
  datacenters = ["home"]
  group "monitoring" {
    task "prometheus" {
      driver = "docker"
      config {
        image = "prom/prometheus:v2.53.0"
        args  = ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=30d"]
        volumes = [
          "local/prometheus.yml:/etc/prometheus/prometheus.yml",
          "/data/compute/prometheus:/prometheus",
        ]
      }
      template {
        change_mode = "signal"
        change_signal = "SIGHUP"
        destination = "local/prometheus.yml"
        data = <<EOT
global:
  scrape_interval: 30s
scrape_configs:
  - job_name: node
    consul_sd_configs:
      - server: "{{ env "attr.unique.network.ip-address" }}:8500"
        services: ["node-exporter"]
EOT
      }
    }
  }
}
