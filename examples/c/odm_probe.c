/* SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * Reading odmclassify's results in a C application: a pad probe on odmclassify's src pad reads the
 * `OdmResultsMeta` custom meta of each buffer (one `odm` structure per ROI; it survives copies, videoconvert and
 * videoscale, unlike ROI params on GStreamer 1.22.0). Field names are those of docs/results.md.
 *
 * Build: meson (examples/c/meson.build, `odm_probe`), or
 *   cc odm_probe.c -o odm_probe $(pkg-config --cflags --libs gstreamer-1.0)
 * Run:   GST_PLUGIN_PATH=target/release ./odm_probe MODEL.onnx [FRAMES]
 * Prints one line per classified ROI: frame, roi id, label, verdict, distance, confidence, category ("none" when the
 * result has none: an anomaly, or a bundle without categories); exit code 1 when nothing was classified, 2 on a
 * pipeline error.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  guint frame;
  guint classified;
} Counts;

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Counts *counts = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  GstCustomMeta *meta = gst_buffer_get_custom_meta (buffer, "OdmResultsMeta");
  if (meta != NULL) {
    GstStructure *s = gst_custom_meta_get_structure (meta);
    const GValue *results = gst_structure_get_value (s, "results");
    guint n = results != NULL ? gst_value_array_get_size (results) : 0;
    for (guint i = 0; i < n; i++) {
      const GstStructure *r = gst_value_get_structure (gst_value_array_get_value (results, i));
      gint roi_id = -1;
      gdouble distance = -1.0, confidence = 0.0;
      const gchar *label = gst_structure_get_string (r, "label");
      const gchar *verdict = gst_structure_get_string (r, "verdict");
      /* A NULL string when there is no category: gst_structure_get_string returns NULL. */
      const gchar *category = gst_structure_get_string (r, "category");
      gst_structure_get_int (r, "roi-id", &roi_id);
      gst_structure_get_double (r, "distance", &distance);
      gst_structure_get_double (r, "confidence", &confidence);
      printf ("frame %u roi %d label %s verdict %s distance %.3f confidence %.3f category %s\n", counts->frame,
          roi_id, label ? label : "", verdict ? verdict : "", distance, confidence, category ? category : "none");
      if (verdict != NULL && g_strcmp0 (verdict, "skipped") != 0)
        counts->classified++;
    }
  }
  counts->frame++;
  return GST_PAD_PROBE_OK;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s MODEL.onnx [FRAMES]\n", argv[0]);
    return 2;
  }
  gst_init (&argc, &argv);
  int frames = argc > 2 ? atoi (argv[2]) : 3;
  gchar *line = g_strdup_printf ("videotestsrc pattern=blue num-buffers=%d ! video/x-raw,width=64,height=64 ! "
      "odmclassify name=classify mode=frame model=\"%s\" ! fakesink", frames, argv[1]);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (line, &error);
  g_free (line);
  if (pipeline == NULL) {
    fprintf (stderr, "cannot build the pipeline: %s\n", error ? error->message : "unknown error");
    g_clear_error (&error);
    return 2;
  }
  Counts counts = { 0, 0 };
  GstElement *classify = gst_bin_get_by_name (GST_BIN (pipeline), "classify");
  GstPad *src = gst_element_get_static_pad (classify, "src");
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &counts, NULL);
  gst_object_unref (src);
  gst_object_unref (classify);

  int status = 0;
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (msg == NULL) {
    fprintf (stderr, "no end of stream within 30 s\n");
    status = 2;
  } else {
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gchar *debug = NULL;
      gst_message_parse_error (msg, &err, &debug);
      fprintf (stderr, "error: %s (%s)\n", err->message, debug ? debug : "");
      g_clear_error (&err);
      g_free (debug);
      status = 2;
    }
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  printf ("%u ROIs classified in %u frames\n", counts.classified, counts.frame);
  if (status == 0 && counts.classified == 0)
    status = 1;
  return status;
}
