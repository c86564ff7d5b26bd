job "nginx-static" {
  datacenters = ["home"]
  group "web" {
    count = 2
    task "nginx" {
      driver = "docker"
      config {
        image   = "nginx:1.27-alpine"
        volumes = [
          "/data/computer/www:/usr/share/nginx/html:ro",   # NOT the compute dir: must not match
          "/data/compute-old/archive:/archive:ro",           # nor this one
        ]
      }
    }
  }
}
