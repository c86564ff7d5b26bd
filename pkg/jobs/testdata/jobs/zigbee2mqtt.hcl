job "zigbee2mqtt" {
  datacenters = ["home"]
  group "z2m" {
    task "z2m" {
      driver = "docker"
      config {
        image = "koenkk/zigbee2mqtt:1.39"
        devices = [{ host_path = "/dev/ttyUSB0", container_path = "/dev/ttyACM0" }]
        volumes = ["/data/compute/zigbee2mqtt:/app/data", "/run/udev:/run/udev:ro"]
      }
      env {
        ZIGBEE2MQTT_DATA = "/app/data"
        TZ               = "Europe/Berlin"
      }
    }
  }
}
