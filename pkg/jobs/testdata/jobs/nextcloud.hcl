job "nextcloud" {
  datacenters = ["home"]

  group "nc" {
    task "app" {
      driver = "docker"
      config {
        image = "nextcloud:29-apache"
        volumes = [
          # html and data live apart
          "/data/compute/nextcloud/html:/var/www/html",
          "/data/compute/nextcloud/data:/var/www/html/data",
          "local/php.ini:/usr/local/etc/php/conf.d/zz-hoctl.ini",
        ]
      }
      template {
        destination = "local/php.ini"
        data        = <<-EOH
          upload_max_filesize = 16G
          post_max_size       = 16G
          ; datadirectory was /data/compute/nextcloud/data before the move
        EOH
      }
    }
  }
}
