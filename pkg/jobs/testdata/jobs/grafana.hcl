job "grafana" {
  datacenters = ["home"]
  group "grafana" {
    task "grafana" {
      driver = "docker"
      config {
        image   = "grafana/grafana:11.1.0"
        volumes = ["/data/compute/grafana:/var/lib/grafana"]
      }
      template {
        source      = "/data/compute/grafana/provisioning/datasources.yaml.tpl"
        destination = "local/provisioning/datasources/ds.yaml"
      }
      artifact {
        source      = "https://grafana.com/api/dashboards/1860/revisions/37/download"
        destination = "local/dashboards/node.json"
        mode        = "file"
      }
    }
  }
}
