package io.bert4j.train;

import io.bert4j.io.AtomicFiles;

import javax.imageio.ImageIO;
import javax.imageio.ImageWriter;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** Draws the loss curve (training loss per step, eval loss points) into a PNG with java.awt, headless. */
public final class LossPlot {
    public static final int WIDTH = 900;
    public static final int HEIGHT = 540;

    private LossPlot() {
    }

    /** A (step, value) point. */
    public record Point(long step, double value) {
    }

    /** Writes {@code png} atomically; non-finite values are left out. */
    public static void write(Path png, List<Point> train, List<Point> eval) {
        System.setProperty("java.awt.headless", "true");
        BufferedImage img = render(train, eval, WIDTH, HEIGHT);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        // An in-memory stream: ImageIO's default file cache registers a shutdown hook, which
        // fails while the JVM shuts down, just when a Ctrl-C checkpoint redraws the plot.
        ImageWriter writer = ImageIO.getImageWritersByFormatName("png").next();
        try (MemoryCacheImageOutputStream ios = new MemoryCacheImageOutputStream(bytes)) {
            writer.setOutput(ios);
            writer.write(img);
        } catch (IOException e) {
            throw new io.bert4j.Bert4jException(png + ": cannot encode the loss plot: " + e.getMessage(), e);
        } finally {
            writer.dispose();
        }
        AtomicFiles.writeBytes(png, bytes.toByteArray());
    }

    static BufferedImage render(List<Point> train, List<Point> eval, int w, int h) {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, w, h);
            int left = 80, right = 30, top = 40, bottom = 60;
            int pw = w - left - right, ph = h - top - bottom;

            long xMin = Long.MAX_VALUE, xMax = Long.MIN_VALUE;
            double yMin = Double.POSITIVE_INFINITY, yMax = Double.NEGATIVE_INFINITY;
            for (List<Point> series : List.of(train, eval)) {
                for (Point p : series) {
                    if (Double.isFinite(p.value())) {
                        xMin = Math.min(xMin, p.step());
                        xMax = Math.max(xMax, p.step());
                        yMin = Math.min(yMin, p.value());
                        yMax = Math.max(yMax, p.value());
                    }
                }
            }
            if (xMin > xMax) { // nothing to draw yet: empty axes
                xMin = 0;
                xMax = 1;
                yMin = 0;
                yMax = 1;
            }
            if (xMax == xMin) {
                xMax = xMin + 1;
            }
            if (yMax - yMin < 1e-12) {
                yMax = yMin + Math.max(1e-3, Math.abs(yMin) * 0.1);
            }
            double pad = (yMax - yMin) * 0.05;
            yMin -= pad;
            yMax += pad;
            final long x0 = xMin, x1 = xMax;
            final double y0 = yMin, y1 = yMax;
            java.util.function.LongToDoubleFunction sx = s -> left + (double) (s - x0) / (x1 - x0) * pw;
            java.util.function.DoubleUnaryOperator sy = v -> top + (1 - (v - y0) / (y1 - y0)) * ph;

            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            FontMetrics fm = g.getFontMetrics();
            // Grid and tick labels.
            for (double t : niceTicks(y0, y1, 6)) {
                int y = (int) Math.round(sy.applyAsDouble(t));
                g.setColor(new Color(230, 230, 230));
                g.drawLine(left, y, left + pw, y);
                g.setColor(Color.DARK_GRAY);
                g.drawLine(left - 5, y, left, y);
                String s = fmt(t);
                g.drawString(s, left - 8 - fm.stringWidth(s), y + fm.getAscent() / 2 - 1);
            }
            for (double t : niceTicks(x0, x1, 8)) {
                if (t != Math.rint(t)) {
                    continue; // steps are whole numbers
                }
                int x = (int) Math.round(sx.applyAsDouble((long) t));
                g.setColor(new Color(230, 230, 230));
                g.drawLine(x, top, x, top + ph);
                g.setColor(Color.DARK_GRAY);
                g.drawLine(x, top + ph, x, top + ph + 5);
                String s = Long.toString((long) t);
                g.drawString(s, x - fm.stringWidth(s) / 2, top + ph + 8 + fm.getAscent());
            }
            g.setColor(Color.BLACK);
            g.drawRect(left, top, pw, ph);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 13));
            fm = g.getFontMetrics();
            g.drawString("step", left + pw / 2 - fm.stringWidth("step") / 2, h - 15);
            AffineTransform saved = g.getTransform();
            g.rotate(-Math.PI / 2);
            g.drawString("loss", -(top + ph / 2) - fm.stringWidth("loss") / 2, 22);
            g.setTransform(saved);
            g.drawString("training loss", left, 25);

            // Training curve.
            g.setClip(left, top, pw + 1, ph + 1);
            g.setColor(new Color(31, 119, 180));
            g.setStroke(new BasicStroke(1.5f));
            Path2D.Double path = new Path2D.Double();
            boolean started = false;
            for (Point p : train) {
                if (!Double.isFinite(p.value())) {
                    started = false;
                    continue;
                }
                double x = sx.applyAsDouble(p.step()), y = sy.applyAsDouble(p.value());
                if (started) {
                    path.lineTo(x, y);
                } else {
                    path.moveTo(x, y);
                    started = true;
                }
            }
            g.draw(path);
            // Eval points.
            g.setColor(new Color(214, 39, 40));
            for (Point p : eval) {
                if (Double.isFinite(p.value())) {
                    int x = (int) Math.round(sx.applyAsDouble(p.step())), y = (int) Math.round(sy.applyAsDouble(p.value()));
                    g.fillOval(x - 4, y - 4, 8, 8);
                }
            }
            g.setClip(null);
            // Legend.
            int lx = left + pw - 130, ly = top + 12;
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            g.setColor(new Color(31, 119, 180));
            g.drawLine(lx, ly, lx + 20, ly);
            g.setColor(Color.BLACK);
            g.drawString("train", lx + 26, ly + 4);
            if (!eval.isEmpty()) {
                g.setColor(new Color(214, 39, 40));
                g.fillOval(lx + 6, ly + 14, 8, 8);
                g.setColor(Color.BLACK);
                g.drawString("eval", lx + 26, ly + 22);
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    /** Round tick values (1, 2, 5 times a power of ten) covering [lo, hi]. */
    static double[] niceTicks(double lo, double hi, int target) {
        double raw = (hi - lo) / Math.max(1, target);
        double mag = Math.pow(10, Math.floor(Math.log10(raw)));
        double norm = raw / mag;
        double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
        double first = Math.ceil(lo / step) * step;
        int n = (int) Math.floor((hi - first) / step + 1e-9) + 1;
        double[] out = new double[Math.max(0, n)];
        for (int i = 0; i < out.length; i++) {
            out[i] = first + i * step;
        }
        return out;
    }

    private static String fmt(double v) {
        double a = Math.abs(v);
        if (a != 0 && (a < 1e-3 || a >= 1e5)) {
            return String.format(java.util.Locale.ROOT, "%.2e", v);
        }
        return String.format(java.util.Locale.ROOT, "%.4g", v).replaceAll("(\\.\\d*?)0+$", "$1").replaceAll("\\.$", "");
    }
}
