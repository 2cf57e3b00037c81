// A JSSE client for stud's interop test: sends a request file, writes what it receives to
// stdout, and fails if the stream ends without close_notify (JSSE then throws
// "SSL peer shut down incorrectly").
//
// usage: java Client.java PORT CA_FILE TLSv1.2|TLSv1.3 REQUEST_FILE

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class Client {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String version = args[2];
        byte[] request = Files.readAllBytes(Path.of(args[3]));

        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (InputStream in = new FileInputStream(args[1])) {
            X509Certificate ca = (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(in);
            trust.setCertificateEntry("stud-test-ca", ca);
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(
            TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);

        Socket raw = new Socket();
        raw.connect(new InetSocketAddress("127.0.0.1", port), 10000);
        raw.setSoTimeout(60000);
        SSLSocket tls = (SSLSocket) context.getSocketFactory()
            .createSocket(raw, "localhost", port, true);
        SSLParameters params = tls.getSSLParameters();
        params.setProtocols(new String[] {version});
        params.setEndpointIdentificationAlgorithm("HTTPS");
        tls.setSSLParameters(params);
        tls.startHandshake();

        OutputStream out = tls.getOutputStream();
        out.write(request);
        out.flush();
        ByteArrayOutputStream reply = new ByteArrayOutputStream();
        InputStream in = tls.getInputStream();
        byte[] buf = new byte[65536];
        int n;
        while ((n = in.read(buf)) != -1) {
            reply.write(buf, 0, n);
        }
        System.out.write(reply.toByteArray());
        System.out.flush();
        System.err.println(tls.getSession().getProtocol() + " "
            + tls.getSession().getCipherSuite() + ", closed cleanly");
        tls.close();
    }
}
