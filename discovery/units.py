"""Engineering units as engineers write them: ``degrees-celsius`` is °C, ``percent-
relative-humidity`` %RH, ``liters-per-second`` L/s. The BACnet name stays available
(on hover in the pages, as ``units`` in the API, beside ``units_symbol``).

Devices spell the names as bacpypes3 does (``degrees-celsius``), as the standard's ASN.1
does (``degreesCelsius``) or in between: they are compared without case or separators.
A name not in the table is shown as it came.
"""

from __future__ import annotations

import re

_SYMBOLS_BY_NAME = {
    # temperature
    "degreesCelsius": "°C",
    "degreesFahrenheit": "°F",
    "degreesKelvin": "K",
    "deltaDegreesKelvin": "ΔK",
    "deltaDegreesFahrenheit": "Δ°F",
    "degreesCelsiusPerHour": "°C/h",
    "degreesCelsiusPerMinute": "°C/min",
    "degreesFahrenheitPerHour": "°F/h",
    "degreesFahrenheitPerMinute": "°F/min",
    "degreeDaysCelsius": "°C·d",
    "degreeDaysFahrenheit": "°F·d",
    # humidity, ratios
    "percent": "%",
    "percentRelativeHumidity": "%RH",
    "percentPerSecond": "%/s",
    "perMille": "‰",
    "partsPerMillion": "ppm",
    "partsPerBillion": "ppb",
    "gramsOfWaterPerKilogramDryAir": "g/kg",
    "powerFactor": "PF",
    "noUnits": "",
    # pressure
    "pascals": "Pa",
    "hectopascals": "hPa",
    "kilopascals": "kPa",
    "bars": "bar",
    "millibars": "mbar",
    "poundsForcePerSquareInch": "psi",
    "inchesOfWater": "inH₂O",
    "inchesOfMercury": "inHg",
    "millimetersOfWater": "mmH₂O",
    "millimetersOfMercury": "mmHg",
    "centimetersOfWater": "cmH₂O",
    # flow and volume
    "litersPerSecond": "L/s",
    "litersPerMinute": "L/min",
    "litersPerHour": "L/h",
    "millilitersPerSecond": "mL/s",
    "cubicMetersPerSecond": "m³/s",
    "cubicMetersPerMinute": "m³/min",
    "cubicMetersPerHour": "m³/h",
    "cubicMetersPerDay": "m³/d",
    "cubicFeetPerMinute": "cfm",
    "cubicFeetPerSecond": "ft³/s",
    "cubicFeetPerHour": "ft³/h",
    "usGallonsPerMinute": "gpm",
    "usGallonsPerHour": "gal/h",
    "imperialGallonsPerMinute": "imp gal/min",
    "liters": "L",
    "milliliters": "mL",
    "cubicMeters": "m³",
    "cubicFeet": "ft³",
    "usGallons": "gal",
    "imperialGallons": "imp gal",
    # energy and power
    "watts": "W",
    "milliwatts": "mW",
    "kilowatts": "kW",
    "megawatts": "MW",
    "wattHours": "Wh",
    "kilowattHours": "kWh",
    "megawattHours": "MWh",
    "kilowattHoursPerSquareMeter": "kWh/m²",
    "wattsPerSquareMeter": "W/m²",
    "joules": "J",
    "kilojoules": "kJ",
    "megajoules": "MJ",
    "kilojoulesPerKilogram": "kJ/kg",
    "kilojoulesPerKilogramDryAir": "kJ/kg",
    "btus": "BTU",
    "kiloBtus": "kBTU",
    "megaBtus": "MBTU",
    "btusPerHour": "BTU/h",
    "kiloBtusPerHour": "kBTU/h",
    "therms": "thm",
    "tonsRefrigeration": "TR",
    "tonHours": "TRh",
    "horsepower": "hp",
    "voltAmperes": "VA",
    "kilovoltAmperes": "kVA",
    "megavoltAmperes": "MVA",
    "voltAmperesReactive": "var",
    "kilovoltAmperesReactive": "kvar",
    "kilovoltAmpereHours": "kVAh",
    "kilowattHoursReactive": "kvarh",
    # electricity
    "volts": "V",
    "millivolts": "mV",
    "kilovolts": "kV",
    "amperes": "A",
    "milliamperes": "mA",
    "ohms": "Ω",
    "kilohms": "kΩ",
    "megohms": "MΩ",
    "hertz": "Hz",
    "kilohertz": "kHz",
    "megahertz": "MHz",
    # speed, length, area, mass
    "metersPerSecond": "m/s",
    "metersPerMinute": "m/min",
    "kilometersPerHour": "km/h",
    "feetPerMinute": "ft/min",
    "feetPerSecond": "ft/s",
    "milesPerHour": "mph",
    "meters": "m",
    "millimeters": "mm",
    "centimeters": "cm",
    "kilometers": "km",
    "feet": "ft",
    "inches": "in",
    "squareMeters": "m²",
    "squareFeet": "ft²",
    "grams": "g",
    "kilograms": "kg",
    "kilogramsPerHour": "kg/h",
    "kilogramsPerSecond": "kg/s",
    "tons": "t",
    "poundsMass": "lb",
    "poundsMassPerHour": "lb/h",
    # light, sound, air quality
    "luxes": "lx",
    "lumens": "lm",
    "candelas": "cd",
    "footCandles": "fc",
    "decibels": "dB",
    "decibelsA": "dB(A)",
    "microgramsPerCubicMeter": "µg/m³",
    "milligramsPerCubicMeter": "mg/m³",
    "pH": "pH",
    # time and rates
    "seconds": "s",
    "milliseconds": "ms",
    "minutes": "min",
    "hours": "h",
    "days": "d",
    "weeks": "wk",
    "months": "mo",
    "years": "yr",
    "perSecond": "/s",
    "perMinute": "/min",
    "perHour": "/h",
    "revolutionsPerMinute": "rpm",
    "cyclesPerHour": "cycles/h",
    "cyclesPerMinute": "cycles/min",
    "degreesAngular": "°",
    "radians": "rad",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_SYMBOLS = {_key(name): symbol for name, symbol in _SYMBOLS_BY_NAME.items()}


def unit_symbol(name: str | None) -> str:
    """The symbol engineers write for a BACnet engineering unit ("°C" for
    ``degrees-celsius``); an unknown name comes back as it is."""
    if not name:
        return ""
    return _SYMBOLS.get(_key(name), name)
