job "minio" {
  datacenters = ["home"]
  group "s3" {
    task "minio" {
      driver = "docker"
      config {
        image = "quay.io/minio/minio:latest"
        args = ["server", "/data", "--console-address", ":9001"]
        volumes = ["/data/compute/minio:/data"]
      }
    }
  }
}
