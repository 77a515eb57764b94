/* bench_svg.c: the roofline plot of `phi3c bench`, written by hand as SVG: log-log axes of
 * arithmetic intensity (int8 ops per byte) and throughput (GOP/s), the measured bandwidth slope,
 * the measured int8 peak, and one dot per kernel. */
#include "bench.h"

#include <math.h>

enum { W = 900, H = 560, LEFT = 80, RIGHT = 200, TOP = 50, BOTTOM = 60 };

typedef struct axes {
    double x0, x1, y0, y1; /* log10 ranges */
} axes;

static double px(const axes *a, double x) {
    return LEFT + (log10(x) - a->x0) / (a->x1 - a->x0) * (W - LEFT - RIGHT);
}
static double py(const axes *a, double y) {
    return H - BOTTOM - (log10(y) - a->y0) / (a->y1 - a->y0) * (H - TOP - BOTTOM);
}

static void grid(FILE *f, const axes *a) {
    for (int e = (int)floor(a->x0); e <= (int)ceil(a->x1); e++) {
        double v = pow(10, e);
        if (log10(v) < a->x0 || log10(v) > a->x1) continue;
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#ddd'/>\n", px(a, v), TOP,
                px(a, v), H - BOTTOM);
        fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle'>%g</text>\n", px(a, v),
                H - BOTTOM + 18, v);
    }
    for (int e = (int)floor(a->y0); e <= (int)ceil(a->y1); e++) {
        double v = pow(10, e);
        if (log10(v) < a->y0 || log10(v) > a->y1) continue;
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#ddd'/>\n", LEFT, py(a, v),
                W - RIGHT, py(a, v));
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%g</text>\n", LEFT - 6, py(a, v) + 4,
                v);
    }
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#000'/>\n", LEFT,
            TOP, W - LEFT - RIGHT, H - TOP - BOTTOM);
    fprintf(f,
            "<text x='%d' y='%d' text-anchor='middle'>arithmetic intensity (int8 ops / byte)"
            "</text>\n",
            (W - RIGHT + LEFT) / 2, H - 18);
    fprintf(f, "<text transform='translate(22,%d) rotate(-90)' text-anchor='middle'>GOP/s</text>\n",
            (H - BOTTOM + TOP) / 2);
}

/* The roof: min(bandwidth x intensity, peak), drawn as a polyline across the x range. */
static void roof(FILE *f, const axes *a, double bw, double peak) {
    double xa = pow(10, a->x0), xb = pow(10, a->x1), knee = peak > 0 ? peak / bw : xb;
    if (knee > xb) knee = xb;
    fprintf(f, "<polyline fill='none' stroke='#c00' stroke-width='2' points='%.1f,%.1f %.1f,%.1f",
            px(a, xa), py(a, bw * xa), px(a, knee), py(a, bw * knee));
    if (peak > 0) fprintf(f, " %.1f,%.1f", px(a, xb), py(a, peak));
    fprintf(f, "'/>\n<text x='%.1f' y='%.1f' fill='#c00'>%.1f GB/s read</text>\n", px(a, xa) + 8,
            py(a, bw * xa) - 8, bw);
    if (peak > 0)
        fprintf(f,
                "<text x='%.1f' y='%.1f' fill='#c00' text-anchor='end'>%.0f GOP/s int8 peak"
                "</text>\n",
                px(a, xb) - 4, py(a, peak) - 6, peak);
}

bool bench_write_roofline(const char *path, double bandwidth_gbs, double peak_gops,
                          const bench_point *pts, int n, const char *title) {
    if (bandwidth_gbs <= 0) return false;
    FILE *f = fopen(path, "w");
    if (!f) return false;
    double top = peak_gops > 0 ? peak_gops : bandwidth_gbs * 1000;
    axes a = {-1, 4, 0, ceil(log10(top * 1.5))};
    for (int i = 0; i < n; i++)
        if (pts[i].gops > 0 && log10(pts[i].gops) < a.y0) a.y0 = floor(log10(pts[i].gops));
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif' font-size='12'>\n<rect width='100%%' height='100%%' "
            "fill='#fff'/>\n<text x='%d' y='28' font-size='15'>%s</text>\n",
            W, H, LEFT, title);
    grid(f, &a);
    roof(f, &a, bandwidth_gbs, peak_gops);
    static const char *colors[] = {"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
                                   "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};
    for (int i = 0; i < n; i++) {
        if (pts[i].gops <= 0 || pts[i].intensity <= 0) continue;
        const char *c = colors[i % 8];
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='5' fill='%s'/>\n", px(&a, pts[i].intensity),
                py(&a, pts[i].gops), c);
        fprintf(f, "<text x='%d' y='%d' fill='%s'>&#9679; %s (%.0f GOP/s)</text>\n", W - RIGHT + 10,
                TOP + 14 + 16 * i, c, pts[i].label, pts[i].gops);
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0;
}
