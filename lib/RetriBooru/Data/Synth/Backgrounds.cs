using SkiaSharp;

namespace RetriBooru.Data.Synth;

/// <summary>Background scenes, drawn in image pixels over a margin beyond the frame (shifts and zooms stay filled).</summary>
internal static class Backgrounds
{
    static readonly SKColor[] Pastels =
    [
        new(250, 235, 215), new(220, 235, 250), new(235, 250, 225), new(250, 225, 235), new(240, 230, 250), new(250, 250, 220),
    ];

    public static void Draw(SKCanvas canvas, string scene, int size, Random random)
    {
        float m = size * 0.25f, lo = -m, hi = size + m;
        var full = new SKRect(lo, lo, hi, hi);
        switch (scene)
        {
            case "simple":
                Fill(canvas, full, Pastels[random.Next(Pastels.Length)]);
                break;
            case "gradient":
                Gradient(canvas, full, Pastels[random.Next(Pastels.Length)], Pastels[random.Next(Pastels.Length)]);
                break;
            case "sky":
                Gradient(canvas, full, new SKColor(110, 170, 245), new SKColor(205, 230, 255));
                for (int i = 0, n = 2 + random.Next(3); i < n; i++)
                    Oval(canvas, size * random.NextSingle(), size * 0.6f * random.NextSingle(), size * (0.12f + 0.1f * random.NextSingle()), size * 0.05f, new SKColor(255, 255, 255, 230));
                break;
            case "classroom":
                {
                    float floor = size * (0.72f + 0.1f * random.NextSingle());
                    Fill(canvas, new SKRect(lo, lo, hi, floor), new SKColor(232, 218, 182));
                    Fill(canvas, new SKRect(lo, floor, hi, hi), new SKColor(150, 100, 62));
                    float bx = size * (-0.1f + 0.6f * random.NextSingle());
                    Fill(canvas, new SKRect(bx, size * 0.12f, bx + size * 0.45f, size * 0.42f), new SKColor(40, 92, 62));
                    float wx = size * (0.55f + 0.3f * random.NextSingle());
                    Fill(canvas, new SKRect(wx, size * 0.1f, wx + size * 0.3f, size * 0.5f), new SKColor(190, 225, 250));
                    break;
                }
            case "night":
                Gradient(canvas, full, new SKColor(12, 16, 52), new SKColor(42, 40, 92));
                for (int i = 0, n = 6 + random.Next(8); i < n; i++)
                    Oval(canvas, size * random.NextSingle(), size * 0.7f * random.NextSingle(), size * 0.012f + 0.4f, size * 0.012f + 0.4f, new SKColor(255, 255, 230));
                Oval(canvas, size * (0.1f + 0.8f * random.NextSingle()), size * 0.15f, size * 0.07f, size * 0.07f, new SKColor(250, 245, 200));
                break;
            case "beach":
                {
                    float sea = size * (0.4f + 0.1f * random.NextSingle()), sand = size * (0.66f + 0.1f * random.NextSingle());
                    Gradient(canvas, new SKRect(lo, lo, hi, sea), new SKColor(120, 185, 250), new SKColor(200, 230, 255));
                    Fill(canvas, new SKRect(lo, sea, hi, sand), new SKColor(40, 120, 200));
                    Fill(canvas, new SKRect(lo, sand, hi, hi), new SKColor(240, 222, 165));
                    break;
                }
            case "forest":
                Gradient(canvas, full, new SKColor(150, 200, 130), new SKColor(60, 110, 60));
                for (int i = 0, n = 3 + random.Next(3); i < n; i++)
                {
                    float x = size * (-0.1f + 1.2f * random.NextSingle());
                    Fill(canvas, new SKRect(x, size * 0.3f, x + size * 0.06f, hi), new SKColor(95, 65, 40));
                    Oval(canvas, x + size * 0.03f, size * 0.25f, size * 0.14f, size * 0.12f, new SKColor(45, 110, 50));
                }
                break;
            default:
                throw new ArgumentException($"unknown background '{scene}'; known: {string.Join(", ", SynthVocabulary.Backgrounds)}");
        }
    }

    static void Fill(SKCanvas canvas, SKRect rect, SKColor color)
    {
        using var paint = new SKPaint { IsAntialias = true, Color = color };
        canvas.DrawRect(rect, paint);
    }

    static void Oval(SKCanvas canvas, float cx, float cy, float rx, float ry, SKColor color)
    {
        using var paint = new SKPaint { IsAntialias = true, Color = color };
        canvas.DrawOval(new SKRect(cx - rx, cy - ry, cx + rx, cy + ry), paint);
    }

    static void Gradient(SKCanvas canvas, SKRect rect, SKColor top, SKColor bottom)
    {
        using var paint = new SKPaint
        {
            Shader = SKShader.CreateLinearGradient(new SKPoint(0, rect.Top), new SKPoint(0, rect.Bottom), [top, bottom], SKShaderTileMode.Clamp),
        };
        canvas.DrawRect(rect, paint);
    }
}
