# Runs on every boot: choose the application slot (counting trial boots of a new one).
import otafiles

otafiles.select()
