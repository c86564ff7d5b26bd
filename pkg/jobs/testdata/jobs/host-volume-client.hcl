# Nomad client config: host volumes for the jobs (not a job, same syntax).
client {
  enabled = true

  host_volume "gitea" {
    path      = "/data/compute/gitea"
    read_only = false
  }

  host_volume "media" {
    path      = "/data/media"
    read_only = true
  }
}
