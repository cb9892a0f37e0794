# Confirms a new firmware or application on its first boot, then waits for updates.
import otaagent

otaagent.start()
