"""An order endpoint: the row and its receipt job commit in one AsyncSession transaction."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import BigInteger, String
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import pgqueue

tasks = pgqueue.Registry()  # run them with: pgqueue worker --app fastapi_app:tasks


@tasks.task(name="send_receipt", queue="email", max_attempts=5)
async def send_receipt(order_id: int) -> None:
    print(f"receipt for order {order_id} sent")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(200))


# DATABASE_URL=postgresql://user@localhost/mydb; SQLAlchemy's driver is psycopg 3.
url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+psycopg")
engine = create_async_engine(url)
new_session = async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def session() -> AsyncIterator[AsyncSession]:
    async with new_session() as db:
        yield db


@app.post("/orders")
async def create_order(email: str,
                       db: Annotated[AsyncSession, Depends(session)]) -> dict[str, int]:
    async with db.begin():  # commits on success; an exception rolls back row and job
        order = Order(email=email)
        db.add(order)
        await db.flush()  # gives order.id
        job_id = await send_receipt.enqueue_async(db, order_id=order.id)
        if email.endswith(".invalid"):  # any failure after the enqueue, for the example
            raise HTTPException(status_code=422, detail="undeliverable address")
    return {"order_id": order.id, "job_id": job_id}
