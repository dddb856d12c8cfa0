"""Binance's JSON, spot and USDⓈ-M futures: symbols, numbers, exchange info, orders, trades,
balances, positions and stream events, formatted from the loopback core's records."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

from ballast.adapters.loopback.core import (
    BalanceUpdate,
    IncomeRecord,
    LoopbackCore,
    OrderRecord,
    OrderUpdate,
    PositionUpdate,
    TradeRecord,
)
from ballast.engine.kernel.clock import NS_PER_MILLISECOND
from ballast.engine.kernel.events import (
    Bar,
    MarkPriceUpdated,
    PositionUpdated,
    QuoteTick,
    TradeTick,
)
from ballast.engine.kernel.instruments import Instrument, plain

_ZERO: Final = Decimal(0)
JSON = dict[str, Any]


def num(value: Decimal | None) -> str:
    """A decimal as Binance writes it: plain digits, no exponent (None → "0")."""
    if value is None:
        return "0"
    return format(plain(value), "f")


def wire_symbol(inst: Instrument) -> str:
    """``BTC/USDT`` and ``BTC/USDT:USDT`` → ``BTCUSDT``."""
    return f"{inst.base}{inst.quote}"


class Symbols:
    """Both directions between unified symbols and Binance's, per market (spot, futures)."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self.spot: dict[str, Instrument] = {}
        self.perp: dict[str, Instrument] = {}
        for inst in instruments:
            (self.perp if inst.is_perp else self.spot)[wire_symbol(inst)] = inst

    def get(self, wire: str, futures: bool) -> Instrument | None:
        return (self.perp if futures else self.spot).get(wire.upper())


def _decimals(step: Decimal) -> int:
    exponent = plain(step).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


# ------------------------------------------------------------------ exchange info


def exchange_info(core: LoopbackCore, futures: bool, now_ms: int, weight_limit: int) -> JSON:
    symbols = [
        (_perp_info(i, core) if futures else _spot_info(i))
        for i in core.instruments.values()
        if i.is_perp == futures
    ]
    limits = [
        {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": weight_limit,
        },
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    ]
    info: JSON = {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": limits,
        "exchangeFilters": [],
        "symbols": symbols,
    }
    if futures:
        info["assets"] = [
            {"asset": core.config.quote_asset, "marginAvailable": True, "autoAssetExchange": "0"}
        ]
    return info


def _spot_info(inst: Instrument) -> JSON:
    return {
        "symbol": wire_symbol(inst),
        "status": "TRADING",
        "baseAsset": inst.base,
        "baseAssetPrecision": 8,
        "quoteAsset": inst.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": num(inst.tick_size),
                "maxPrice": "10000000",
                "tickSize": num(inst.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": num(inst.min_qty),
                "maxQty": "9000000",
                "stepSize": num(inst.lot_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": num(inst.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _perp_info(inst: Instrument, core: LoopbackCore) -> JSON:
    return {
        "symbol": wire_symbol(inst),
        "pair": wire_symbol(inst),
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base,
        "quoteAsset": inst.quote,
        "marginAsset": core.config.quote_asset,
        "pricePrecision": _decimals(inst.tick_size),
        "quantityPrecision": _decimals(inst.lot_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": num(core.config.liquidation_fee_rate),
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": num(inst.tick_size),
                "maxPrice": "10000000",
                "tickSize": num(inst.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": num(inst.min_qty),
                "maxQty": "1000000",
                "stepSize": num(inst.lot_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": num(inst.min_qty),
                "maxQty": "1000000",
                "stepSize": num(inst.lot_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": num(inst.min_notional)},
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


# ------------------------------------------------------------------ account


def spot_account(core: LoopbackCore, now_ms: int) -> JSON:
    ex = core.exchange
    assets = sorted({core.config.quote_asset, *core.config.balances, *_traded_assets(core)})
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": "0.001", "taker": "0.001", "buyer": "0", "seller": "0"},
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": a, "free": num(ex.free(a)), "locked": num(ex.locked(a))} for a in assets
        ],
        "permissions": ["SPOT"],
        "uid": 1,
    }


def _traded_assets(core: LoopbackCore) -> set[str]:
    return {i.base for i in core.instruments.values() if not i.is_perp}


def futures_account(core: LoopbackCore, now_ms: int) -> JSON:
    """Positions only, no asset rows (the USDT wallet is reported as spot)."""
    ex = core.exchange
    upnl = sum((p.unrealized_pnl for p in _positions(core, now_ms)), _ZERO)
    return {
        "totalInitialMargin": num(ex.position_margin() + ex.order_margin()),
        "totalMaintMargin": num(ex.maintenance_margin()),
        "totalWalletBalance": "0",
        "totalUnrealizedProfit": num(upnl),
        "totalMarginBalance": "0",
        "totalPositionInitialMargin": num(ex.position_margin()),
        "totalOpenOrderInitialMargin": num(ex.order_margin()),
        "totalCrossWalletBalance": "0",
        "totalCrossUnPnl": num(upnl),
        "availableBalance": "0",
        "maxWithdrawAmount": "0",
        "assets": [],
        "positions": [
            {
                "symbol": wire_symbol(core.instruments[p.symbol]),
                "positionSide": "BOTH",
                "positionAmt": num(p.qty),
                "unrealizedProfit": num(p.unrealized_pnl),
                "isolatedMargin": "0",
                "notional": num(p.qty * p.mark_price),
                "isolatedWallet": "0",
                "initialMargin": num(p.margin),
                "maintMargin": "0",
                "updateTime": now_ms,
            }
            for p in _positions(core, now_ms)
        ],
    }


def _positions(core: LoopbackCore, now_ms: int) -> list[PositionUpdated]:
    """The open perp positions as the exchange reports them."""
    now = now_ms * NS_PER_MILLISECOND
    return [e for e in core.exchange.account_events(now) if isinstance(e, PositionUpdated)]


def position_risk(core: LoopbackCore, symbol: Instrument | None, now_ms: int) -> list[JSON]:
    out: list[JSON] = []
    for p in _positions(core, now_ms):
        if symbol is not None and p.symbol != symbol.symbol:
            continue
        inst = core.instruments[p.symbol]
        out.append(
            {
                "symbol": wire_symbol(inst),
                "positionSide": "BOTH",
                "positionAmt": num(p.qty),
                "entryPrice": num(p.entry_price),
                "breakEvenPrice": num(p.entry_price),
                "markPrice": num(p.mark_price),
                "unRealizedProfit": num(p.unrealized_pnl),
                "liquidationPrice": num(p.liquidation_price),
                "isolatedMargin": "0",
                "notional": num(p.qty * p.mark_price),
                "marginAsset": core.config.quote_asset,
                "isolatedWallet": "0",
                "initialMargin": num(p.margin),
                "maintMargin": "0",
                "positionInitialMargin": num(p.margin),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": now_ms,
            }
        )
    return out


def leverage_brackets(core: LoopbackCore) -> list[JSON]:
    out: list[JSON] = []
    for inst in core.instruments.values():
        if not inst.is_perp:
            continue
        tiers = core.config.brackets.get(inst.symbol, core.config.generic_brackets)
        out.append(
            {
                "symbol": wire_symbol(inst),
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": n,
                        "initialLeverage": int(b.max_leverage),
                        "notionalCap": float(b.cap),
                        "notionalFloor": float(b.floor),
                        "maintMarginRatio": float(b.mmr),
                        "cum": float(b.maint_amount),
                    }
                    for n, b in enumerate(tiers, start=1)
                ],
            }
        )
    return out


# ------------------------------------------------------------------ orders and trades

_SIDE: Final = {"buy": "BUY", "sell": "SELL"}


def order_type(record: OrderRecord) -> str:
    cmd = record.cmd
    if cmd.order_type == "market":
        return "MARKET"
    if cmd.post_only and not core_is_perp(record):
        return "LIMIT_MAKER"
    return "LIMIT"


def core_is_perp(record: OrderRecord) -> bool:
    return ":" in record.symbol


def time_in_force(record: OrderRecord) -> str:
    cmd = record.cmd
    if core_is_perp(record) and cmd.post_only:
        return "GTX"
    return cmd.time_in_force


def spot_order(record: OrderRecord, inst: Instrument) -> JSON:
    cmd = record.cmd
    return {
        "symbol": wire_symbol(inst),
        "orderId": record.order_id,
        "orderListId": -1,
        "clientOrderId": record.client_order_id,
        "price": num(cmd.price if cmd.order_type == "limit" else _ZERO),
        "origQty": num(cmd.qty),
        "executedQty": num(record.executed_qty),
        "cummulativeQuoteQty": num(record.cum_quote),
        "status": record.status,
        "timeInForce": time_in_force(record),
        "type": order_type(record),
        "side": _SIDE[cmd.side],
        "stopPrice": "0",
        "icebergQty": "0",
        "time": record.time_ms,
        "updateTime": record.update_ms,
        "isWorking": True,
        "workingTime": record.time_ms,
        "origQuoteOrderQty": "0",
        "selfTradePreventionMode": "NONE",
    }


def spot_order_reply(record: OrderRecord, inst: Instrument, core: LoopbackCore, resp: str) -> JSON:
    """The reply to ``POST /api/v3/order`` (``newOrderRespType`` ACK, RESULT or FULL)."""
    ack = {
        "symbol": wire_symbol(inst),
        "orderId": record.order_id,
        "orderListId": -1,
        "clientOrderId": record.client_order_id,
        "transactTime": record.time_ms,
    }
    if resp == "ACK":
        return ack
    full = spot_order(record, inst)
    for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking"):
        full.pop(key)
    reply = ack | full
    if resp == "FULL":
        trades = [t for t in core.trades if t.order_id == record.order_id]
        reply["fills"] = [
            {
                "price": num(t.price),
                "qty": num(t.qty),
                "commission": num(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in trades
        ]
    return reply


def futures_order(record: OrderRecord, inst: Instrument) -> JSON:
    cmd = record.cmd
    return {
        "orderId": record.order_id,
        "symbol": wire_symbol(inst),
        "status": record.status,
        "clientOrderId": record.client_order_id,
        "price": num(cmd.price if cmd.order_type == "limit" else _ZERO),
        "avgPrice": num(record.avg_price),
        "origQty": num(cmd.qty),
        "executedQty": num(record.executed_qty),
        "cumQty": num(record.executed_qty),
        "cumQuote": num(record.cum_quote),
        "timeInForce": time_in_force(record),
        "type": order_type(record),
        "reduceOnly": cmd.reduce_only,
        "closePosition": False,
        "side": _SIDE[cmd.side],
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order_type(record),
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": record.time_ms,
        "updateTime": record.update_ms,
    }


def spot_trade(t: TradeRecord, inst: Instrument) -> JSON:
    return {
        "symbol": wire_symbol(inst),
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": num(t.price),
        "qty": num(t.qty),
        "quoteQty": num(t.quote_qty),
        "commission": num(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.side == "buy",
        "isMaker": t.maker,
        "isBestMatch": True,
    }


def futures_trade(t: TradeRecord, inst: Instrument) -> JSON:
    return {
        "buyer": t.side == "buy",
        "commission": num(t.commission),
        "commissionAsset": t.commission_asset,
        "id": t.trade_id,
        "maker": t.maker,
        "orderId": t.order_id,
        "price": num(t.price),
        "qty": num(t.qty),
        "quoteQty": num(t.quote_qty),
        "realizedPnl": num(t.realized_pnl),
        "side": _SIDE[t.side],
        "positionSide": "BOTH",
        "symbol": wire_symbol(inst),
        "time": t.time_ms,
    }


def income(rec: IncomeRecord, inst: Instrument | None) -> JSON:
    return {
        "symbol": "" if inst is None else wire_symbol(inst),
        "incomeType": rec.income_type,
        "income": num(rec.income),
        "asset": rec.asset,
        "info": rec.income_type,
        "time": rec.time_ms,
        "tranId": rec.tran_id,
        "tradeId": rec.trade_id,
    }


def premium_index(core: LoopbackCore, inst: Instrument, now_ms: int) -> JSON:
    mark = core.marks.get(inst.symbol)
    price = core.exchange.mark_price(inst.symbol)
    return {
        "symbol": wire_symbol(inst),
        "markPrice": num(price),
        "indexPrice": num(mark.index if mark is not None else price),
        "estimatedSettlePrice": num(price),
        "lastFundingRate": num(mark.funding_rate if mark is not None else _ZERO),
        "interestRate": "0.00010000",
        "nextFundingTime": 0 if mark is None else mark.next_funding_ns // NS_PER_MILLISECOND,
        "time": now_ms,
    }


# ------------------------------------------------------------------ streams


def book_ticker(event: QuoteTick, inst: Instrument, update_id: int, now_ms: int) -> JSON:
    msg: JSON = {
        "u": update_id,
        "s": wire_symbol(inst),
        "b": num(event.bid),
        "B": num(event.bid_size),
        "a": num(event.ask),
        "A": num(event.ask_size),
    }
    if inst.is_perp:
        return {"e": "bookTicker", **msg, "E": now_ms, "T": now_ms}
    return msg


def mark_price_update(event: MarkPriceUpdated, inst: Instrument, now_ms: int) -> JSON:
    return {
        "e": "markPriceUpdate",
        "E": now_ms,
        "s": wire_symbol(inst),
        "p": num(event.mark),
        "i": num(event.index),
        "P": num(event.mark),
        "r": num(event.funding_rate),
        "T": event.next_funding_ns // NS_PER_MILLISECOND,
    }


def trade_event(event: TradeTick, inst: Instrument, update_id: int, now_ms: int) -> JSON:
    return {
        "e": "trade",
        "E": now_ms,
        "s": wire_symbol(inst),
        "t": update_id,
        "p": num(event.price),
        "q": num(event.size),
        "T": now_ms,
        "m": event.aggressor == "sell",
        "M": True,
    }


def kline_event(event: Bar, inst: Instrument, now_ms: int, interval: str) -> JSON:
    start = now_ms - event.interval_s * 1000
    return {
        "e": "kline",
        "E": now_ms,
        "s": wire_symbol(inst),
        "k": {
            "t": start,
            "T": now_ms - 1,
            "s": wire_symbol(inst),
            "i": interval,
            "f": 0,
            "L": 0,
            "o": num(event.open),
            "c": num(event.close),
            "h": num(event.high),
            "l": num(event.low),
            "v": num(event.volume),
            "n": 0,
            "x": True,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def execution_report(update: OrderUpdate, inst: Instrument) -> JSON:
    """Spot ``executionReport``."""
    record, trade, cmd = update.record, update.trade, update.record.cmd
    return {
        "e": "executionReport",
        "E": update.time_ms,
        "s": wire_symbol(inst),
        "c": record.client_order_id,
        "S": _SIDE[cmd.side],
        "o": order_type(record),
        "f": time_in_force(record),
        "q": num(cmd.qty),
        "p": num(cmd.price if cmd.order_type == "limit" else _ZERO),
        "P": "0",
        "F": "0",
        "g": -1,
        "C": "",
        "x": update.exec_type,
        "X": record.status,
        "r": "NONE",
        "i": record.order_id,
        "l": num(trade.qty if trade else _ZERO),
        "z": num(record.executed_qty),
        "L": num(trade.price if trade else _ZERO),
        "n": num(trade.commission if trade else _ZERO),
        "N": trade.commission_asset if trade else None,
        "T": update.time_ms,
        "t": trade.trade_id if trade else -1,
        "I": 0,
        "w": record.is_open,
        "m": bool(trade and trade.maker),
        "M": False,
        "O": record.time_ms,
        "Z": num(record.cum_quote),
        "Y": num(trade.quote_qty if trade else _ZERO),
        "Q": "0",
        "W": record.time_ms,
        "V": "NONE",
    }


def order_trade_update(update: OrderUpdate, inst: Instrument) -> JSON:
    """USDⓈ-M ``ORDER_TRADE_UPDATE``."""
    record, trade, cmd = update.record, update.trade, update.record.cmd
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": update.time_ms,
        "T": update.time_ms,
        "o": {
            "s": wire_symbol(inst),
            "c": record.client_order_id,
            "S": _SIDE[cmd.side],
            "o": order_type(record),
            "f": time_in_force(record),
            "q": num(cmd.qty),
            "p": num(cmd.price if cmd.order_type == "limit" else _ZERO),
            "ap": num(record.avg_price),
            "sp": "0",
            "x": update.exec_type,
            "X": record.status,
            "i": record.order_id,
            "l": num(trade.qty if trade else _ZERO),
            "z": num(record.executed_qty),
            "L": num(trade.price if trade else _ZERO),
            "n": num(trade.commission if trade else _ZERO),
            "N": trade.commission_asset if trade else "USDT",
            "T": update.time_ms,
            "t": trade.trade_id if trade else 0,
            "b": "0",
            "a": "0",
            "m": bool(trade and trade.maker),
            "R": cmd.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": order_type(record),
            "ps": "BOTH",
            "cp": False,
            "rp": num(trade.realized_pnl if trade else _ZERO),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def outbound_account_position(update: BalanceUpdate) -> JSON:
    return {
        "e": "outboundAccountPosition",
        "E": update.time_ms,
        "u": update.time_ms,
        "B": [{"a": a, "f": num(free), "l": num(locked)} for a, free, locked in update.balances],
    }


def account_update(update: PositionUpdate, inst: Instrument) -> JSON:
    p = update.position
    return {
        "e": "ACCOUNT_UPDATE",
        "E": update.time_ms,
        "T": update.time_ms,
        "a": {
            "m": update.reason,
            "B": [],
            "P": [
                {
                    "s": wire_symbol(inst),
                    "pa": num(p.qty),
                    "ep": num(p.entry_price),
                    "bep": num(p.entry_price),
                    "cr": "0",
                    "up": num(p.unrealized_pnl),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            ],
        },
    }


def state(core: LoopbackCore, now_ms: int) -> JSON:
    """``GET /_loopback/state``: everything a test compares an engine's book against."""
    ex = core.exchange
    assets = sorted({core.config.quote_asset, *core.config.balances, *_traded_assets(core)})
    return {
        "time": now_ms,
        "balances": {a: {"free": num(ex.free(a)), "locked": num(ex.locked(a))} for a in assets},
        "positions": {
            p.symbol: {
                "qty": num(p.qty),
                "entryPrice": num(p.entry_price),
                "markPrice": num(p.mark_price),
                "unrealizedPnl": num(p.unrealized_pnl),
            }
            for p in _positions(core, now_ms)
        },
        "openOrders": [r.client_order_id for r in core.open_orders()],
        "orders": [_state_order(r) for r in core.orders.values()],
        "trades": [_state_trade(t) for t in core.trades],
        "income": [
            {
                "tranId": i.tran_id,
                "symbol": i.symbol,
                "incomeType": i.income_type,
                "income": num(i.income),
                "asset": i.asset,
                "time": i.time_ms,
            }
            for i in core.income
        ],
        "inputsLogged": core.inputs_logged,
    }


def _state_order(r: OrderRecord) -> JSON:
    cmd = r.cmd
    return {
        "clientOrderId": r.client_order_id,
        "orderId": r.order_id,
        "symbol": r.symbol,
        "side": cmd.side,
        "type": cmd.order_type,
        "qty": num(cmd.qty),
        "price": None if cmd.price is None else num(cmd.price),
        "reduceOnly": cmd.reduce_only,
        "status": r.status,
        "executedQty": num(r.executed_qty),
        "avgPrice": num(r.avg_price),
        "reason": r.reason,
        "tradeIds": list(r.trade_ids),
    }


def _state_trade(t: TradeRecord) -> JSON:
    return {
        "id": t.trade_id,
        "orderId": t.order_id,
        "clientOrderId": t.client_order_id,
        "symbol": t.symbol,
        "side": t.side,
        "price": num(t.price),
        "qty": num(t.qty),
        "fee": num(t.commission),
        "feeAsset": t.commission_asset,
        "maker": t.maker,
        "time": t.time_ms,
    }
