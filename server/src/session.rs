//! One client connection: handshake, authorization, and a task per opened device stream.

use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::EndpointId;
use tokio::sync::mpsc;
use xoq_link::copies;
use xoq_link::datagrams::{DatagramEnd, DatagramRouter};
use xoq_link::{AuthorizedClients, MessageReader, MessageWriter, StreamError};
use xoq_wire::{
    negotiate_version, Access, Delivery, ErrorCode, Message, Peer, Refusal, Welcome, MAX_VERSION,
    MIN_VERSION,
};

use crate::admission::Sessions;
use crate::devices::{Device, Devices};
use crate::grants::{self, Grants};
use crate::serial::writer::WriterName;

/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message body a client may send on its control stream (a `Hello` is 70 bytes).
const CONTROL_LIMIT: usize = 4096;
/// Messages queued towards one client before the device waits (rw) or drops (ro).
const OUTBOX_DEPTH: usize = 256;

/// What every connection shares.
pub struct ServerCtx {
    pub name: String,
    pub id: EndpointId,
    pub devices: Arc<Devices>,
    /// The authorized clients, followed live (see `grants`).
    pub grants: Arc<Grants>,
}

/// Serves one connection until the client leaves or breaks the protocol. The client's key
/// is checked before anything else: an unknown key is refused by closing the connection with
/// the reason, before any stream of it is accepted.
pub async fn serve_connection(ctx: Arc<ServerCtx>, conn: Connection, sessions: Arc<Sessions>) {
    let client = conn.remote_id();
    let short = client.fmt_short().to_string();
    let auth = match authorized(&ctx, client) {
        Ok(a) => a,
        Err(text) => {
            conn.close(VarInt::from_u32(xoq_link::CLOSE_REFUSED), text.as_bytes());
            tracing::warn!(client = %short, "refused: {text}");
            return;
        }
    };
    let _slot = match sessions.admit(client) {
        Ok(s) => s,
        Err(text) => {
            conn.close(VarInt::from_u32(xoq_link::CLOSE_FULL), text.as_bytes());
            tracing::warn!(client = %short, "turned away: {text}");
            return;
        }
    };
    match handshake(&ctx, &conn, auth).await {
        Ok(control) => {
            tracing::info!(
                client = %short,
                sessions = sessions.count(),
                path = %xoq_link::net_path::selected_path(&conn),
                "client connected"
            );
            let datagrams = Arc::new(DatagramRouter::default());
            run_session(&ctx, &conn, client, control, datagrams.clone()).await;
            let c = datagrams.copy_stats.snapshot();
            tracing::info!(
                client = %short,
                copies_sent = c.sent,
                copies_used = c.used,
                copies_unused = c.unused,
                copies_unrouted = c.unrouted,
                copies_skipped = c.skipped,
                copies_unneeded = c.unneeded,
                can_frames_superseded = c.superseded,
                path = %xoq_link::net_path::selected_path(&conn),
                "client disconnected"
            );
        }
        Err(e) => tracing::warn!(client = %short, "handshake failed: {e}"),
    }
}

/// The control stream's two halves, and the protocol version the handshake chose.
type Control = (MessageWriter, MessageReader, u16);

/// The authorized clients (read again if the file changed), if `client` is one of them;
/// otherwise the refusal's text.
fn authorized(ctx: &ServerCtx, client: EndpointId) -> Result<Arc<AuthorizedClients>, String> {
    let auth = ctx.grants.refresh();
    if auth.client(&client).is_none() {
        return Err(format!(
            "client {client} is not authorized on server `{}` ({}); on the server run: \
             xoq-server authorize {client}",
            ctx.name,
            ctx.id.fmt_short()
        ));
    }
    Ok(auth)
}

async fn handshake(
    ctx: &ServerCtx,
    conn: &Connection,
    auth: Arc<AuthorizedClients>,
) -> Result<Control, String> {
    let client = conn.remote_id();
    let (send, recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| "no control stream".to_string())?
        .map_err(|e| e.to_string())?;
    let mut writer = MessageWriter::new(send);
    // The control stream carries one Hello from a client: a few KiB is the most it buffers.
    let mut reader = MessageReader::limited(recv, Peer::Client, CONTROL_LIMIT);
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Ok(Ok(Some(Message::Hello(h)))) => h,
        Ok(Ok(Some(m))) => {
            return Err(protocol_close(
                conn,
                format!("expected Hello, got {}", m.name()),
            ))
        }
        Ok(Ok(None)) => return Err("client closed before Hello".into()),
        Ok(Err(e)) => return Err(protocol_close(conn, e.to_string())),
        Err(_) => return Err(protocol_close(conn, "no Hello within 10 s".into())),
    };
    let version = match negotiate_version(&hello, MIN_VERSION, MAX_VERSION) {
        Ok(v) => v,
        Err(r) => return Err(refuse(conn, &mut writer, r).await),
    };
    let devices = ctx.devices.catalog_for(&client, &auth);
    let welcome = Welcome {
        version,
        server_name: ctx.name.clone(),
        devices,
    };
    writer
        .send(&Message::Welcome(welcome))
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(client_name = %hello.client_name, version, "welcomed");
    Ok((writer, reader, version))
}

/// Sends the refusal, gives the client a moment to read it, then closes with the reason.
async fn refuse(conn: &Connection, writer: &mut MessageWriter, r: Refusal) -> String {
    let _ = writer.send(&Message::Refused(r.clone())).await;
    writer.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    conn.close(VarInt::from_u32(xoq_link::CLOSE_REFUSED), r.text.as_bytes());
    format!("refused ({}): {}", r.code, r.text)
}

pub(crate) fn protocol_close(conn: &Connection, why: String) -> String {
    conn.close(
        VarInt::from_u32(xoq_link::CLOSE_PROTOCOL),
        format!("protocol error: {why}").as_bytes(),
    );
    format!("protocol error: {why}")
}

async fn run_session(
    ctx: &Arc<ServerCtx>,
    conn: &Connection,
    client: EndpointId,
    control: Control,
    datagrams: Arc<DatagramRouter>,
) {
    let (_writer, mut reader, version) = control;
    let datagrams_ended = datagrams.run(conn);
    tokio::pin!(datagrams_ended);
    // A client taken off the authorized list loses its whole connection.
    let removed = grants::client_removed(ctx.grants.subscribe(), client);
    tokio::pin!(removed);
    loop {
        tokio::select! {
            _ = &mut removed => {
                tracing::warn!("this client is no longer authorized; closing its connection");
                conn.close(
                    VarInt::from_u32(xoq_link::CLOSE_REFUSED),
                    format!("this client's authorization on server `{}` was revoked", ctx.name).as_bytes(),
                );
                return;
            }
            s = conn.accept_bi() => match s {
                Ok((send, recv)) => {
                    let (ctx, conn) = (ctx.clone(), conn.clone());
                    let datagrams = datagrams.clone();
                    let link = Link { conn, client, version, datagrams };
                    tokio::spawn(async move { serve_device(ctx, link, send, recv).await });
                }
                Err(e) => {
                    tracing::debug!("connection ended: {e}");
                    return;
                }
            },
            m = reader.next() => match m {
                Ok(None) => return,
                Ok(Some(m)) => {
                    protocol_close(conn, format!("unexpected {} on the control stream", m.name()));
                    return;
                }
                Err(StreamError::Wire(e)) => {
                    tracing::warn!("malformed control message: {e}; closing this connection");
                    protocol_close(conn, e.to_string());
                    return;
                }
                Err(_) => return,
            },
            end = &mut datagrams_ended => {
                if let DatagramEnd::Malformed(why) = end {
                    tracing::warn!("malformed datagram: {why}; closing this connection");
                    protocol_close(conn, why);
                }
                return;
            }
        }
    }
}

/// What a device stream's service knows of its connection.
struct Link {
    conn: Connection,
    client: EndpointId,
    /// The protocol version in use.
    version: u16,
    datagrams: Arc<DatagramRouter>,
}

async fn serve_device(ctx: Arc<ServerCtx>, link: Link, send: SendStream, recv: RecvStream) {
    let Link {
        conn,
        client,
        version,
        datagrams,
    } = link;
    let mut writer = MessageWriter::new(send);
    let mut reader = MessageReader::new(recv, Peer::Client);
    let (device, access, writer_token, delivery) = match reader.next().await {
        Ok(Some(Message::Open {
            device,
            access,
            writer,
            delivery,
        })) => (device, access, writer, delivery),
        Ok(Some(m)) => {
            protocol_close(&conn, format!("expected Open, got {}", m.name()));
            return;
        }
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("malformed Open: {e}; closing this connection");
            protocol_close(&conn, e.to_string());
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(OUTBOX_DEPTH);
    let outbox = tx.clone();
    let notice = tx.clone();
    // The grants as the watcher last read them: the file was read at this connection's start
    // and is followed since, so an Open does not touch it.
    let open = OpenRequest {
        device: &device,
        access,
        writer: WriterName::new(*client.as_bytes(), writer_token),
        delivery,
    };
    let attached = open_device(&ctx, &ctx.grants.current(), client, open, tx);
    let attachment = match attached {
        Ok((att, info)) => {
            let kind = info.kind;
            if writer.send(&Message::Opened(info)).await.is_err() {
                return;
            }
            let (w, r) = (&mut writer, &mut reader);
            copies::attach(version, kind, delivery, &conn, &datagrams, w, r);
            att
        }
        Err((code, text)) => {
            drop(notice);
            tracing::info!(%device, "open refused: {text}");
            let _ = writer.send(&Message::Error { code, text }).await;
            writer.finish();
            return;
        }
    };
    tracing::info!(%device, %access, %delivery, "device opened");
    let pump = async {
        while let Some(m) = rx.recv().await {
            if writer.send(&m).await.is_err() {
                return;
            }
        }
        writer.finish();
    };
    tokio::pin!(pump);
    let handle = async {
        let mut requests = DeviceRequests {
            conn: &conn,
            version,
            reader: &mut reader,
            outbox,
            datagrams,
        };
        match attachment {
            Attached::Serial(a) => crate::serial::stream::handle_requests(&mut requests, a).await,
            Attached::Can(a) => crate::can::stream::handle_requests(&mut requests, a).await,
            Attached::Camera(a) => crate::camera::stream::handle_requests(&mut requests, a).await,
            Attached::Audio(a) => crate::audio::stream::handle_requests(&mut requests, a).await,
        }
    };
    // The grant is followed while the stream is open: revoked or narrowed below what it was
    // opened with, the stream is closed with the reason (the mounter reopens it if it may).
    let lost = grants::lost(ctx.grants.subscribe(), client, &device, access);
    let ended = tokio::select! {
        _ = &mut pump => Ended::Sent,
        _ = handle => Ended::Requests,
        why = lost => Ended::Lost(why),
    };
    // `handle` is gone here: the attachment is released and its senders dropped.
    match ended {
        Ended::Sent => drop(notice),
        Ended::Requests => {
            drop(notice);
            pump.await
        }
        Ended::Lost(text) => {
            tracing::warn!(%device, "{text}; closing the device stream");
            let tell = async move {
                let code = ErrorCode::NotPermitted;
                let _ = notice.send(Message::Error { code, text }).await;
            };
            tokio::join!(tell, pump);
        }
    }
    tracing::info!(%device, "device closed");
}

/// Why a device stream's service stopped.
enum Ended {
    /// The stream to the client failed or every sender was dropped.
    Sent,
    /// The client's requests ended (its stream or the connection).
    Requests,
    /// The client's grant no longer covers the stream.
    Lost(String),
}

/// A client's hold on a device of any kind.
enum Attached {
    Serial(crate::serial::Attachment),
    Can(crate::can::CanAttachment),
    Camera(crate::camera::CameraAttachment),
    Audio(crate::audio::AudioAttachment),
}

/// What a client's `Open` asks for.
struct OpenRequest<'a> {
    device: &'a str,
    access: Access,
    /// Its writer's name, for a serial port (see `serial::writer`).
    writer: Option<WriterName>,
    /// How the stream's messages are delivered (latest-wins only for a CAN bus).
    delivery: Delivery,
}

fn open_device(
    ctx: &ServerCtx,
    auth: &AuthorizedClients,
    client: EndpointId,
    open: OpenRequest<'_>,
    tx: mpsc::Sender<Message>,
) -> Result<(Attached, xoq_wire::DeviceInfo), (ErrorCode, String)> {
    let OpenRequest {
        device,
        access,
        writer,
        delivery,
    } = open;
    // The grant first: a client not granted a name gets the same answer whether or not a
    // device of that name exists, so it cannot probe for names.
    let Some(granted) = auth.access(&client, device) else {
        return Err((
            ErrorCode::NotPermitted,
            format!("this client is not authorized for `{device}`"),
        ));
    };
    let Some(dev) = ctx.devices.get(device) else {
        return Err((
            ErrorCode::UnknownDevice,
            format!("server `{}` has no device `{device}`", ctx.name),
        ));
    };
    if access > granted {
        return Err((
            ErrorCode::NotPermitted,
            format!("this client may open `{device}` read-only only; mount it read-only"),
        ));
    }
    if delivery == Delivery::Latest && !matches!(dev, Device::Can(_)) {
        return Err((
            ErrorCode::InvalidSetting,
            format!("`{device}` is not a CAN bus: latest-wins delivery is for CAN buses only; open it in order"),
        ));
    }
    match dev {
        Device::Serial(d) => {
            let att = d.attach(access, writer, tx)?;
            Ok((Attached::Serial(att), d.info(access)))
        }
        Device::Can(d) => {
            let att = d.attach(access, tx)?;
            Ok((Attached::Can(att), d.info(access)))
        }
        Device::Camera(d) => Ok((Attached::Camera(d.attach(access, tx)), d.info(access))),
        Device::Audio(d) => Ok((Attached::Audio(d.attach(access)?), d.info(access))),
    }
}

/// Where a device's messages for one client go; its session writes them to the stream.
pub type Outbox = mpsc::Sender<Message>;

/// The requests a client sends on one device stream.
pub(crate) struct DeviceRequests<'a> {
    pub conn: &'a Connection,
    /// The protocol version the handshake chose.
    pub version: u16,
    reader: &'a mut MessageReader,
    /// The stream's outbox, for the answer to a malformed message.
    outbox: Outbox,
    /// The connection's audio datagrams, by device.
    pub datagrams: Arc<DatagramRouter>,
}

impl DeviceRequests<'_> {
    /// Sends `m` to the client on this device's stream; `Err` once the stream is gone.
    pub(crate) async fn reply(&self, m: Message) -> Result<(), ()> {
        self.outbox.send(m).await.map_err(|_| ())
    }

    /// Frames of this stream a latest-wins delivery dropped so far (see
    /// `MessageReader::superseded`).
    pub(crate) fn superseded(&self) -> u64 {
        self.reader.superseded()
    }

    /// The next request; `None` when the stream ended or the link failed, and after undecodable
    /// bytes, which are answered with `Error{Malformed}` and close the connection.
    pub(crate) async fn next(&mut self) -> Option<Message> {
        match self.reader.next().await {
            Ok(Some(m)) => Some(m),
            Ok(None) => None,
            Err(StreamError::Wire(e)) => {
                tracing::warn!("malformed message: {e}; closing this connection");
                let text = e.to_string();
                let _ = self
                    .outbox
                    .send(Message::Error {
                        code: ErrorCode::Malformed,
                        text: format!("malformed message: {text}"),
                    })
                    .await;
                protocol_close(self.conn, text);
                None
            }
            Err(e) => {
                tracing::debug!("device stream ended: {e}");
                None
            }
        }
    }
}

/// Text for a request a read-only client may not make.
pub(crate) const READ_ONLY_TEXT: &str =
    "this device is open read-only for this client; the request was discarded";

/// Text for a message that is not a request on this kind of device.
pub(crate) fn unexpected_text(m: &Message) -> String {
    format!(
        "{} is not a request a client may send on this device stream",
        m.name()
    )
}
