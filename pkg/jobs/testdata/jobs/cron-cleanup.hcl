job "cron-cleanup" {
  type = "batch"
  periodic { crons = ["@daily"] }
  group "c" {
    task "find" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "find /data/compute/*/cache -mtime +7 -delete"]
      }
    }
  }
}
