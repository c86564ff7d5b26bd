job   "mosquitto"   {
  datacenters   =   ["home"]
  group "mqtt" {
      task "mosquitto" {
          driver = "docker"
          config {
              image    =    "eclipse-mosquitto:2"
              volumes  =    [   "/data/compute/mosquitto/config:/mosquitto/config"   ,  "/data/compute/mosquitto/data:/mosquitto/data"   ]
          }
      }
  }
}
