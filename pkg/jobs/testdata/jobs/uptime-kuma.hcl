/* Uptime Kuma
   status page */
job "uptime-kuma" {
  datacenters = ["home"] // one DC
  group "kuma" {
    task "kuma" {
      driver = "docker"
      config {
        image = "louislam/uptime-kuma:1"
        volumes = [
          "/data/compute/uptime-kuma:/app/data", /* the sqlite db */
        ]
      }
    }
  }
}
