import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;

/**
 * Prints every cipher suite name the running JDK's SSLEngine accepts, one
 * per line: "NAME STATUS [STANDARD-NAME]". STATUS is "enabled" (in the
 * default SSLParameters), "supported" (supported but not enabled by
 * default) or "disabled" (accepted by setEnabledCipherSuites but not
 * supported: jdk.tls.disabledAlgorithms removes it from every handshake).
 * An alias, such as SSL_RSA_WITH_3DES_EDE_CBC_SHA, carries the standard
 * name it stands for. The names come from sun.security.ssl.CipherSuite
 * (run with --add-opens java.base/sun.security.ssl=ALL-UNNAMED), and each
 * is checked through the public API.
 */
public class JDKCipherSuites {
  public static void main(String[] args) throws Exception {
    SSLContext ctx = SSLContext.getDefault();
    List<String> enabled = Arrays.asList(ctx.getDefaultSSLParameters().getCipherSuites());
    List<String> supported = Arrays.asList(ctx.getSupportedSSLParameters().getCipherSuites());
    Class<?> cs = Class.forName("sun.security.ssl.CipherSuite");
    Field nameField = cs.getDeclaredField("name");
    Field aliasesField = cs.getDeclaredField("aliases");
    nameField.setAccessible(true);
    aliasesField.setAccessible(true);
    SSLEngine engine = ctx.createSSLEngine();
    List<String> lines = new ArrayList<>();
    for (Object suite : cs.getEnumConstants()) {
      String name = (String) nameField.get(suite);
      List<String> names = new ArrayList<>();
      names.add(name);
      for (Object alias : (List<?>) aliasesField.get(suite)) names.add((String) alias);
      for (String n : names) {
        try {
          engine.setEnabledCipherSuites(new String[] {n});
        } catch (IllegalArgumentException e) {
          continue; // a name the JDK lists but refuses: unknown to Flink's engines
        }
        String status = enabled.contains(name) ? "enabled" : supported.contains(name) ? "supported" : "disabled";
        lines.add(n + " " + status + (n.equals(name) ? "" : " " + name));
      }
    }
    for (String s : supported) {
      if (!lines.contains(s + " enabled") && !lines.contains(s + " supported")) lines.add(s + " supported-unlisted");
    }
    lines.forEach(System.out::println);
  }
}
