job "node-exporter" {
  datacenters = ["home"]
  type = "system"
  group "ne" {
    task "node-exporter" {
      driver = "raw_exec"
      config {
        command = "/run/current-system/sw/bin/node_exporter"
        args    = ["--collector.textfile.directory=/data/compute/node-exporter/textfile", "--path.rootfs=/"]
      }
    }
  }
}
