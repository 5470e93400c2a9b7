"""The stack: BAC0 and bacpypes3, imported on first start, with BAC0's side effects undone.

The only file of the product that imports BAC0 or bacpypes3, and only inside
``load_stack()``: importing the package must stay cheap and free of side effects (BAC0
reads ``.env`` and adds log handlers at import). The client keeps the namespace it returns
as ``_bp`` and reaches every bacpypes3 class through it.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from types import SimpleNamespace
from typing import Any

_stack_lock = threading.Lock()
_stack: SimpleNamespace | None = None


def load_stack() -> SimpleNamespace:
    """Import BAC0 and the bacpypes3 names the client uses, neutralising BAC0's side effects.

    - BAC0 calls ``load_dotenv(os.getcwd() + "/.env")`` at import: a worker started in some
      folder would pick up that folder's .env. It is skipped (the product reads its own
      .env through django-environ).
    - Every BAC0 class logger gets a stdout handler (INFO) and a ~/.BAC0/BAC0.log file
      handler, and does not propagate. They are removed; BAC0 records propagate to the
      "BAC0_Root" logger at WARNING, so the product's logging configuration decides.
      (BAC0 still creates the empty ~/.BAC0 directory at import.)
    """
    global _stack
    with _stack_lock:
        if _stack is not None:
            return _stack
        try:
            dotenv: Any = importlib.import_module("dotenv")
        except ImportError:  # BAC0 then only prints a hint
            dotenv = None
        real_load_dotenv = dotenv.load_dotenv if dotenv else None
        if dotenv:
            dotenv.load_dotenv = lambda *args, **kwargs: False
        try:
            import BAC0
            import BAC0.core.app.asyncApp as bac0_async_app
            from BAC0.scripts.Base import Base as Bac0Base
        finally:
            if dotenv:
                dotenv.load_dotenv = real_load_dotenv
        quiet_bac0_loggers()
        logging.getLogger("BAC0_Root").setLevel(logging.WARNING)
        # bacpypes3 logs every undecodable packet from a broken device at ERROR with a
        # traceback; the client reports those devices itself.
        logging.getLogger("bacpypes3").setLevel(logging.CRITICAL)

        from bacpypes3 import apdu as bp_apdu
        from bacpypes3 import basetypes, errors, pdu, primitivedata, vendor

        _stack = SimpleNamespace(
            BAC0=BAC0,
            Bac0Base=Bac0Base,
            bac0_device_json=os.path.join(os.path.dirname(bac0_async_app.__file__), "device.json"),
            Address=pdu.Address,
            GlobalBroadcast=pdu.GlobalBroadcast,
            RemoteStation=pdu.RemoteStation,
            WhoIsRequest=bp_apdu.WhoIsRequest,
            SubscribeCOVRequest=bp_apdu.SubscribeCOVRequest,
            SimpleAckPDU=bp_apdu.SimpleAckPDU,
            GetEventInformationRequest=bp_apdu.GetEventInformationRequest,
            GetAlarmSummaryRequest=bp_apdu.GetAlarmSummaryRequest,
            AcknowledgeAlarmRequest=bp_apdu.AcknowledgeAlarmRequest,
            ParameterOutOfRange=errors.ParameterOutOfRange,
            TimeStamp=basetypes.TimeStamp,
            DateTime=basetypes.DateTime,
            Date=primitivedata.Date,
            Time=primitivedata.Time,
            EventState=basetypes.EventState,
            EventTransitionBits=basetypes.EventTransitionBits,
            DaysOfWeek=basetypes.DaysOfWeek,
            Destination=basetypes.Destination,
            Recipient=basetypes.Recipient,
            DeviceAddress=basetypes.DeviceAddress,
            get_object_class=lambda object_type: vendor.get_vendor_info(0).get_object_class(
                primitivedata.ObjectType(object_type)
            ),
            ErrorRejectAbortNack=bp_apdu.ErrorRejectAbortNack,
            ErrorPDU=bp_apdu.ErrorPDU,
            RejectPDU=bp_apdu.RejectPDU,
            AbortPDU=bp_apdu.AbortPDU,
            ObjectIdentifier=primitivedata.ObjectIdentifier,
            PropertyIdentifier=basetypes.PropertyIdentifier,
            PropertyReference=basetypes.PropertyReference,
            ErrorType=basetypes.ErrorType,
            StatusFlags=basetypes.StatusFlags,
            BinaryPV=basetypes.BinaryPV,
            Real=primitivedata.Real,
            Double=primitivedata.Double,
            Boolean=primitivedata.Boolean,
            Enumerated=primitivedata.Enumerated,
            BitString=primitivedata.BitString,
            Null=primitivedata.Null,
            Unsigned=primitivedata.Unsigned,
        )
        return _stack


def quiet_bac0_loggers() -> None:
    """Remove the stdout and ~/.BAC0 file handlers BAC0 gives each class logger."""
    from BAC0.core.utils.notes import LogList

    for bac0_logger in list(LogList.LOGGERS):
        for handler in list(bac0_logger.handlers):
            bac0_logger.removeHandler(handler)
            handler.close()
        bac0_logger.propagate = True
        bac0_logger.setLevel(logging.NOTSET)
