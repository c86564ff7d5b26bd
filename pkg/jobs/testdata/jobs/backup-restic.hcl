job "backup-restic" {
  datacenters = ["home"]
  type        = "batch"

  periodic {
    crons            = ["0 3 * * *"]
    prohibit_overlap = true
  }

  group "backup" {
    task "restic" {
      driver = "raw_exec"
      config {
        command = "/run/current-system/sw/bin/restic"
        args    = ["backup", "/data/compute", "--exclude", "/data/compute/*/cache"]
      }
      env {
        RESTIC_REPOSITORY = "sftp:fractal:/backups/restic"
      }
    }
  }
}
